package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// Defaults of Config.
const (
	DefaultKEKLabel    = "vigil-kek"
	DefaultSessions    = 4
	DefaultApplication = "vigil"
	// MaxSessions bounds Config.Sessions.
	MaxSessions = 64
)

// PINEnv is the environment variable ReadPIN falls back to when no PIN file is given.
const PINEnv = "VIGIL_HSM_PIN"

// Config configures Open. The zero value of an optional field selects its default.
type Config struct {
	// ModulePath is the PKCS#11 module (shared library) to load, e.g.
	// /usr/lib/softhsm/libsofthsm2.so. Required: there is no default.
	ModulePath string
	// TokenLabel selects the token by its CKA_LABEL (token info label, trailing blanks trimmed),
	// never by slot number, which a module may reassign. At most 32 bytes. Required.
	TokenLabel string
	// PIN is the user PIN. Required. The caller reads it from a file or the environment (see
	// ReadPIN), never from the command line. The Store keeps it to log in again after a reconnect.
	PIN string
	// KEKLabel is the CKA_LABEL of the AES-256 key-encryption key. Default DefaultKEKLabel.
	KEKLabel string
	// CreateKEK makes Open generate the KEK inside the token when the token has none
	// (`vigil keys import`). `vigil serve` leaves it false, so that a wrong token or label is an
	// error rather than a new, empty key store.
	CreateKEK bool
	// Sessions is the size of the session pool, which bounds parallel decryption at Load.
	// Default DefaultSessions, at most MaxSessions.
	Sessions int
	// Application is the CKA_APPLICATION of the data objects holding the sealed keys; every data
	// object of this application on the token belongs to this store. Default DefaultApplication.
	Application string
	// Logger receives reconnect notices (never secrets). Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with zero optional fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.KEKLabel == "" {
		c.KEKLabel = DefaultKEKLabel
	}
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	if c.Application == "" {
		c.Application = DefaultApplication
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field by name. Zero optional fields are valid (they take
// their defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.ModulePath == "":
		return errors.New("hsm: Config.ModulePath is required (the PKCS#11 module to load)")
	case c.TokenLabel == "":
		return errors.New("hsm: Config.TokenLabel is required")
	case len(c.TokenLabel) > 32:
		return fmt.Errorf("hsm: Config.TokenLabel %q is longer than the 32 bytes of a PKCS#11 token label", c.TokenLabel)
	case c.PIN == "":
		return errors.New("hsm: Config.PIN is empty")
	case c.Sessions < 1 || c.Sessions > MaxSessions:
		return fmt.Errorf("hsm: Config.Sessions is %d; want 1 to %d", c.Sessions, MaxSessions)
	}
	return nil
}

// String renders the configuration without the PIN.
func (c Config) String() string {
	pin := "unset"
	if c.PIN != "" {
		pin = "[redacted]"
	}
	return fmt.Sprintf("hsm.Config{ModulePath:%q TokenLabel:%q PIN:%s KEKLabel:%q CreateKEK:%t Sessions:%d Application:%q}",
		c.ModulePath, c.TokenLabel, pin, c.KEKLabel, c.CreateKEK, c.Sessions, c.Application)
}

// GoString keeps %#v from printing the PIN.
func (c Config) GoString() string { return c.String() }

// LogValue keeps slog from printing the PIN.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// maxPINFileSize bounds a PIN file.
const maxPINFileSize = 4 << 10

// ReadPIN returns the user PIN from file when file is not empty, else from the PINEnv
// environment variable read through getenv. Trailing "\n" and "\r" are removed from a file;
// nothing else is trimmed. An empty PIN is an error. Errors name the file or variable, never the
// content.
func ReadPIN(file string, getenv func(string) string) (string, error) {
	if file == "" {
		pin := getenv(PINEnv)
		if pin == "" {
			return "", fmt.Errorf("hsm: no PIN: give a PIN file or set %s", PINEnv)
		}
		return pin, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("hsm: PIN file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPINFileSize+1))
	if err != nil {
		return "", fmt.Errorf("hsm: PIN file %s: %w", file, err)
	}
	defer clear(b)
	if len(b) > maxPINFileSize {
		return "", fmt.Errorf("hsm: PIN file %s is larger than %d bytes", file, maxPINFileSize)
	}
	pin := bytes.TrimRight(b, "\r\n")
	if len(pin) == 0 {
		return "", fmt.Errorf("hsm: PIN file %s is empty", file)
	}
	return string(pin), nil
}
