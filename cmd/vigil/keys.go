package main

// `vigil keys import|list|delete|generate`: moving EIP-2335 keystores into the local keyring,
// Vault or an HSM (the slow KDF runs once, here), and looking after what is stored there.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

const keysUsage = `Usage:
  vigil keys import --to local|vault|hsm|shared --keystores DIR|FILE (--password-file F | --passwords-path D) [flags]
  vigil keys list   [--from local|vault|hsm|shared|all] [flags]
  vigil keys delete --from local|vault|hsm|shared --pubkeys 0x…,0x… [flags]

"shared" is the HA pair's keystore table in its Postgres database (--slashing-protection-db-url,
--ha-key-encryption-key-file): keys there follow the leader; a local keyring is one machine's.
  vigil keys generate --count N --out DIR [--password-file F] [--interop] [flags]

Run "vigil keys <command> --help" for the flags.
`

func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("%s", keysUsage)
	}
	switch args[0] {
	case "import":
		return keysImport(ctx, args[1:], getenv, stdout, stderr)
	case "list":
		return keysList(ctx, args[1:], getenv, stdout)
	case "delete":
		return keysDelete(ctx, args[1:], getenv, stdout)
	case "generate":
		return keysGenerate(args[1:], getenv, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	return usagef("unknown keys command %q\n\n%s", args[0], keysUsage)
}

// keysFlagSet is the flag set of one keys command with the key-store flags and --data-dir.
func keysFlagSet(name string, ks *keyStoreFlags, getenv func(string) string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("keys "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := new(string)
	fs.StringVar(dataDir, "data-dir", defaultDataDir(getenv), "data directory (the default keyring is <data-dir>/keyring)")
	fs.StringVar(new(string), "config-file", "", "YAML file of flag values (keys are flag names)")
	ks.register(fs, dataDir)
	ks.shared.register(fs)
	return fs, dataDir
}

func parseKeysFlags(fs *flag.FlagSet, args []string, getenv func(string) string, stdout io.Writer, synopsis string) error {
	if err := parseLayered(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, synopsis)
		}
		return err
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// import

type importOutcome struct {
	file   string
	pub    keystore.PublicKey
	status string // imported, duplicate, error
	err    error
}

func keysImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var ks keyStoreFlags
	fs, _ := keysFlagSet("import", &ks, getenv)
	to := fs.String("to", "", "where the keys go: local (this machine's keyring), vault, hsm, or shared (the HA pair's keystore table: follows the leader)")
	src := fs.String("keystores", "", "EIP-2335 keystore file, or directory of *.json keystores")
	pwFile := fs.String("password-file", "", "file holding the one password of every keystore")
	pwDir := fs.String("passwords-path", "", "directory of <keystore name>.txt password files")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "keystores decrypted in parallel (scrypt needs 256 MiB each)")
	if err := parseKeysFlags(fs, args, getenv, stdout, "Usage: vigil keys import --to local|vault|hsm|shared --keystores DIR|FILE [flags]"); err != nil {
		return err
	}
	if !slices.Contains(storeKinds, *to) {
		return usagef("--to: want one of %s", strings.Join(storeKinds, ", "))
	}
	ks.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *src == "" || (*pwFile == "") == (*pwDir == "") {
		return usagef("give --keystores and exactly one of --password-file, --passwords-path")
	}
	if *workers < 1 {
		return usagef("--workers must be at least 1")
	}
	files, err := keystoreFiles(*src)
	if err != nil {
		return err
	}
	var shared []byte
	if *pwFile != "" {
		if shared, err = keystore.ReadPasswordFile(*pwFile); err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		defer clear(shared)
	}
	store, closeStore, err := ks.openKeyStore(ctx, *to, true, getenv)
	if err != nil {
		return fmt.Errorf("open %s key store: %w", *to, err)
	}
	defer closeStore()
	stored, err := store.List(ctx)
	if err != nil {
		return fmt.Errorf("list %s key store: %w", *to, err)
	}
	have := make(map[keystore.PublicKey]bool, len(stored))
	for _, pk := range stored {
		have[pk] = true
	}

	out := make([]importOutcome, len(files))
	var done, imported, dups, failed atomic.Int64
	start := time.Now()
	stopProgress := progress(stderr, func() string {
		return fmt.Sprintf("import: %d/%d keystores (%d imported, %d duplicate, %d failed), %.0f/s",
			done.Load(), len(files), imported.Load(), dups.Load(), failed.Load(), float64(done.Load())/time.Since(start).Seconds())
	})
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(*workers, max(len(files), 1)) {
		wg.Go(func() {
			for i := range next {
				o := importOne(ctx, store, files[i], shared, *pwDir, have)
				out[i] = o
				switch o.status {
				case "imported":
					imported.Add(1)
				case "duplicate":
					dups.Add(1)
				default:
					failed.Add(1)
				}
				done.Add(1)
			}
		})
	}
	for i := range files {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	stopProgress()
	for _, o := range out {
		if o.status == "" {
			continue // interrupted before it started
		}
		pub := "-"
		if o.pub != (keystore.PublicKey{}) {
			pub = o.pub.String()
		}
		if o.err != nil {
			fmt.Fprintf(stdout, "%s\t%s\terror: %v\n", pub, o.file, o.err)
		} else {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", pub, o.file, o.status)
		}
	}
	fmt.Fprintf(stdout, "%d imported, %d duplicate, %d failed into %s in %s\n", imported.Load(), dups.Load(), failed.Load(), *to, time.Since(start).Round(time.Millisecond))
	if imported.Load() > 0 {
		if *to == "shared" {
			fmt.Fprintln(stdout, "both instances of a running HA pair pick the new keys up by themselves (within a second or two)")
		} else {
			fmt.Fprintln(stdout, "a running vigil serve picks new keys up on POST /reload or SIGHUP")
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("import interrupted: %w", err)
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d keystores not imported", failed.Load())
	}
	return nil
}

// importOne decrypts one keystore and stores its key. A keystore whose declared public key is
// already stored is a duplicate without decrypting it.
func importOne(ctx context.Context, store keystore.Store, file string, shared []byte, pwDir string, have map[keystore.PublicKey]bool) importOutcome {
	o := importOutcome{file: filepath.Base(file)}
	fail := func(err error) importOutcome { o.status, o.err = "error", err; return o }
	data, err := os.ReadFile(file)
	if err != nil {
		return fail(err)
	}
	ks, err := keystore.ParseKeystore(data)
	if err != nil {
		return fail(err)
	}
	if ks.PublicKey == nil {
		return fail(errors.New("keystore declares no pubkey: cannot check the decrypted secret against it"))
	}
	o.pub = *ks.PublicKey
	if have[o.pub] {
		o.status = "duplicate"
		return o
	}
	password := shared
	if password == nil {
		pwPath := filepath.Join(pwDir, strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))+".txt")
		if password, err = keystore.ReadPasswordFile(pwPath); err != nil {
			return fail(fmt.Errorf("password file: %w", err))
		}
		defer clear(password)
	}
	sk, err := ks.Decrypt(password) // checks the secret against the declared pubkey
	if err != nil {
		return fail(err)
	}
	defer sk.Zero()
	put := func() error { return store.Put(ctx, sk) }
	if kp, ok := store.(keystorePutter); ok {
		put = func() error { return kp.PutKeystore(ctx, o.pub, data, password) } // the keystore as it is
	}
	if err := put(); err != nil {
		if errors.Is(err, keystore.ErrDuplicate) {
			o.status = "duplicate"
			return o
		}
		return fail(err)
	}
	o.status = "imported"
	return o
}

// keystoreFiles is one file, or the *.json files of a directory in name order.
func keystoreFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--keystores: %w", err)
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("--keystores: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".json") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--keystores: no *.json keystore in %s", path)
	}
	return out, nil
}

// progress prints line() to w every second until the returned stop is called, which prints it
// a last time.
func progress(w io.Writer, line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintln(w, line())
				return
			case <-t.C:
				fmt.Fprintln(w, line())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// ---------------------------------------------------------------------------------------------
// list

func keysList(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var ks keyStoreFlags
	fs, _ := keysFlagSet("list", &ks, getenv)
	from := fs.String("from", "all", "local, vault, hsm, shared, or all (every configured store but shared)")
	if err := parseKeysFlags(fs, args, getenv, stdout, "Usage: vigil keys list [--from local|vault|hsm|shared|all] [flags]"); err != nil {
		return err
	}
	var kinds []string
	switch {
	case *from == "all":
		for _, s := range ks.serveSources(getenv) {
			kinds = append(kinds, s.Name())
		}
		if len(kinds) == 0 {
			return usagef("no key store configured (a keyring in <data-dir>/keyring, --keyring-path, --vault-address or --hsm-module)")
		}
	case slices.Contains(storeKinds, *from):
		kinds = []string{*from}
	default:
		return usagef("--from: want local, vault, hsm, shared or all")
	}
	failed := 0
	for _, kind := range kinds {
		store, closeStore, err := ks.openKeyStore(ctx, kind, false, getenv)
		if err != nil {
			fmt.Fprintf(stdout, "-\t%s\terror: %v\n", kind, err)
			failed++
			continue
		}
		res, err := store.Load(ctx)
		closeStore()
		if err != nil {
			fmt.Fprintf(stdout, "-\t%s\terror: %v\n", kind, err)
			failed++
			continue
		}
		type row struct{ pub, status string }
		var rows []row
		for _, k := range res.Keys {
			rows = append(rows, row{k.PublicKey().String(), "ok"})
			if lk, ok := k.(*keystore.LocalKey); ok {
				lk.Zero() // listed, not used
			}
		}
		for _, e := range res.Errors {
			pub := "-"
			if e.Pubkey != (keystore.PublicKey{}) {
				pub = e.Pubkey.String()
			}
			rows = append(rows, row{pub, "error: " + e.Error()})
			failed++
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].pub < rows[j].pub })
		for _, r := range rows {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", r.pub, kind, r.status)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d keys or stores failed to load", failed)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// delete

func keysDelete(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var ks keyStoreFlags
	fs, _ := keysFlagSet("delete", &ks, getenv)
	from := fs.String("from", "", "local, vault, hsm or shared")
	list := fs.String("pubkeys", "", "comma-separated public keys to delete")
	if err := parseKeysFlags(fs, args, getenv, stdout, "Usage: vigil keys delete --from local|vault|hsm|shared --pubkeys 0x…,0x… [flags]"); err != nil {
		return err
	}
	if !slices.Contains(storeKinds, *from) {
		return usagef("--from: want one of %s", strings.Join(storeKinds, ", "))
	}
	if len(splitList(*list)) == 0 {
		return usagef("--pubkeys: give the public keys to delete")
	}
	var pubs []keystore.PublicKey
	for _, a := range splitList(*list) {
		pk, err := keystore.ParsePublicKey(a)
		if err != nil {
			return usagef("%q: %v", a, err)
		}
		pubs = append(pubs, pk)
	}
	store, closeStore, err := ks.openKeyStore(ctx, *from, false, getenv)
	if err != nil {
		return fmt.Errorf("open %s key store: %w", *from, err)
	}
	defer closeStore()
	failed := 0
	for _, pk := range pubs {
		switch err := store.Delete(ctx, pk); {
		case err == nil:
			fmt.Fprintf(stdout, "%s\tdeleted\n", pk)
		case errors.Is(err, keystore.ErrNotFound):
			fmt.Fprintf(stdout, "%s\tnot found\n", pk)
			failed++
		default:
			fmt.Fprintf(stdout, "%s\terror: %v\n", pk, err)
			failed++
		}
	}
	if *from == "shared" {
		fmt.Fprintln(stdout, "both instances of a running HA pair drop deleted keys by themselves (their slashing history is kept)")
	} else {
		fmt.Fprintln(stdout, "a running vigil serve drops deleted keys at its next reload (POST /reload or SIGHUP); their slashing history is kept")
	}
	if failed > 0 {
		return fmt.Errorf("%d keys not deleted", failed)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// generate

func keysGenerate(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(new(string), "config-file", "", "YAML file of flag values (keys are flag names)")
	count := fs.Int("count", 1, "number of keys")
	start := fs.Uint64("start-index", 0, "first EIP-2334 validator index (m/12381/3600/<i>/0/0) or interop index")
	out := fs.String("out", "", "directory the keystores are written to (created; files named <0x-pubkey>.json), or - to print them on stdout, one JSON document per line")
	pwFile := fs.String("password-file", "", "password of the keystores; created with a random password if missing (default <out>/password.txt; required with --out -)")
	interop := fs.Bool("interop", false, "the public interop keys of test networks instead of keys from a fresh random seed")
	kdf := fs.String("kdf", "scrypt", "scrypt (EIP-2335 standard), pbkdf2 (standard) or dev (cheap pbkdf2; test networks only)")
	seedFile := fs.String("seed-file", "", "also write the random EIP-2333 seed (hex, mode 0600) here, to derive the keys again later; keep it away from the keystores")
	if err := parseKeysFlags(fs, args, getenv, stdout, "Usage: vigil keys generate --count N --out DIR|- [flags]"); err != nil {
		return err
	}
	if *out == "" || *count < 1 {
		return usagef("give --out and a --count of at least 1")
	}
	toStdout := *out == "-"
	if toStdout && *pwFile == "" {
		return usagef("--out - needs --password-file")
	}
	params := map[string]keystore.KDFParams{"scrypt": keystore.StandardScrypt(), "pbkdf2": keystore.StandardPBKDF2(), "dev": keystore.DevKDF()}
	kdfParams, ok := params[*kdf]
	if !ok {
		return usagef("--kdf: want scrypt, pbkdf2 or dev")
	}
	if *pwFile == "" {
		*pwFile = filepath.Join(*out, "password.txt")
	}
	if !toStdout {
		if err := os.MkdirAll(*out, 0o700); err != nil {
			return err
		}
	}
	password, err := generatedPassword(*pwFile)
	if err != nil {
		return err
	}
	defer clear(password)
	var seed []byte
	if !*interop {
		seed = make([]byte, 32)
		if _, err := rand.Read(seed); err != nil {
			return err
		}
		defer clear(seed)
		if *seedFile != "" {
			if exists(*seedFile) {
				return fmt.Errorf("--seed-file %s exists: refusing to overwrite a seed", *seedFile)
			}
			if err := keystore.WriteFileAtomic(*seedFile, []byte(hex.EncodeToString(seed)+"\n")); err != nil {
				return err
			}
		}
	}
	for i := *start; i < *start+uint64(*count); i++ {
		var sk *keystore.SecretKey
		path, label := fmt.Sprintf("m/12381/3600/%d/0/0", i), ""
		if *interop {
			sk, err = keystore.InteropSecretKey(i)
			path, label = "", fmt.Sprintf("interop:%d", i)
		} else {
			sk, err = keystore.DeriveSecretKey(seed, path)
			label = path
		}
		if err != nil {
			return err
		}
		data, err := keystore.Encrypt(sk, password, kdfParams, path)
		pub := sk.PublicKey()
		sk.Zero()
		if err != nil {
			return err
		}
		if toStdout {
			var compact bytes.Buffer
			if err := json.Compact(&compact, data); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", compact.Bytes())
			continue
		}
		file := filepath.Join(*out, pub.String()+".json")
		if err := keystore.WriteFileAtomic(file, data); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", pub, label, file)
	}
	if toStdout {
		return nil
	}
	what := "keystores"
	if *interop {
		what = "interop keystores (public test keys)"
	}
	fmt.Fprintf(stdout, "%d %s in %s, password in %s\n", *count, what, *out, *pwFile)
	if *seedFile != "" {
		fmt.Fprintf(stdout, "EIP-2333 seed in %s: keep it offline\n", *seedFile)
	}
	return nil
}

// generatedPassword reads passwordFile, or creates it with a random password.
func generatedPassword(passwordFile string) ([]byte, error) {
	if exists(passwordFile) {
		pw, err := keystore.ReadPasswordFile(passwordFile)
		if err == nil && len(pw) == 0 {
			err = fmt.Errorf("%s is empty", passwordFile)
		}
		return pw, err
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	pw := []byte(hex.EncodeToString(raw))
	if err := keystore.WriteFileAtomic(passwordFile, append(slices.Clone(pw), '\n')); err != nil {
		return nil, err
	}
	return pw, nil
}
