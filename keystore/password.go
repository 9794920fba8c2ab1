package keystore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ErrPasswordEncoding: the password is not valid UTF-8, so the EIP-2335
// password processing (which works on Unicode code points) is undefined for it.
var ErrPasswordEncoding = errors.New("password is not valid UTF-8")

// maxPasswordFileSize bounds a password file read from disk.
const maxPasswordFileSize = 64 << 10

// NormalizePassword applies the EIP-2335 password processing and returns the
// bytes that enter the KDF:
//
//  1. the password (UTF-8) is normalised to Unicode NFKD;
//  2. the C0 control codes U+0000–U+001F, DEL U+007F and the C1 control codes
//     U+0080–U+009F are removed (as code points, not bytes);
//  3. the result is encoded as UTF-8.
//
// Invalid UTF-8 input is rejected with ErrPasswordEncoding rather than being
// guessed at. The result is a fresh buffer the caller must zero; the input is
// neither modified nor retained. Intermediate buffers are zeroed (the
// normaliser's own internal state cannot be).
func NormalizePassword(password []byte) ([]byte, error) {
	if !utf8.Valid(password) {
		return nil, ErrPasswordEncoding
	}
	// NFKD can expand a code point into many (up to 18 for U+FDFA); reserve
	// generously so that append rarely reallocates and leaves copies behind.
	nfkd := norm.NFKD.Append(make([]byte, 0, 4*len(password)+16), password...)
	out := make([]byte, 0, len(nfkd))
	for i := 0; i < len(nfkd); {
		r, size := utf8.DecodeRune(nfkd[i:])
		if !isControl(r) {
			out = append(out, nfkd[i:i+size]...)
		}
		i += size
	}
	zero(nfkd)
	return out, nil
}

// isControl reports the code points EIP-2335 strips from passwords.
func isControl(r rune) bool {
	return r <= 0x1f || (r >= 0x7f && r <= 0x9f)
}

// readPasswordFile reads a whole password file (at most 64 KiB) and removes
// trailing line terminators ("\n" and "\r", any number of them). Nothing else
// is trimmed: leading or trailing spaces are part of the password. This is the
// rule for --keystores-password-file and --keystores-passwords-path. The
// caller zeroes the result.
func readPasswordFile(path string) ([]byte, error) {
	b, err := readLimited(path, maxPasswordFileSize)
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(b, "\r\n"), nil
}

// readPasswordFirstLine reads a password file and returns its first line
// (without the "\n" or "\r\n" that ends it). This is the rule Web3Signer
// key-config files use for keystorePasswordFile. The caller zeroes the result.
func readPasswordFirstLine(path string) ([]byte, error) {
	b, err := readLimited(path, maxPasswordFileSize)
	if err != nil {
		return nil, err
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		zero(b[i:])
		b = b[:i]
	}
	return bytes.TrimSuffix(b, []byte("\r")), nil
}

// readLimited reads a file of at most limit bytes. On any error the partial
// content is zeroed.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 0, 512)
	b, err = readAllInto(b, io.LimitReader(f, limit+1))
	if err != nil {
		zero(b)
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		zero(b)
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// readAllInto is io.ReadAll that zeroes every buffer it outgrows, so that no
// copy of a secret file is left behind in freed memory.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), 2*cap(b)+512)
			copy(nb, b)
			zero(b)
			b = nb
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// zero overwrites b with zeros.
func zero(b []byte) { clear(b) }

// ReadPasswordFile reads a password file with the keystore-directory rule (the whole file, at
// most 64 KiB, trailing "\n"/"\r" removed). The caller zeroes the result.
func ReadPasswordFile(path string) ([]byte, error) { return readPasswordFile(path) }
