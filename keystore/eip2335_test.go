package keystore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDecryptVectors decrypts every public positive EIP-2335 vector to the
// ERC-2335 test secret and checks the declared metadata.
func TestDecryptVectors(t *testing.T) {
	erc := sharedTestdata(t, "eip-2333-2335-keys", "erc-2335")
	w3s := sharedTestdata(t, "web3signer", "bls-keystore-test-vectors")
	var expected struct {
		Password   string `json:"password"`
		Normalized string `json:"password_after_nfkd_and_control_char_stripping_hex"`
		Secret     string `json:"secret"`
		Pubkey     string `json:"pubkey"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(erc, "expected.json")), &expected); err != nil {
		t.Fatal(err)
	}
	if expected.Password != vectorPassword || strings.TrimPrefix(expected.Secret, "0x") != vectorSecret || "0x"+expected.Pubkey != vectorPubkey {
		t.Fatalf("expected.json disagrees with the constants of this test: %+v", expected)
	}
	norm, err := NormalizePassword([]byte(expected.Password))
	if err != nil {
		t.Fatal(err)
	}
	if got := "0x" + hex.EncodeToString(norm); got != expected.Normalized {
		t.Fatalf("NormalizePassword = %s, want %s", got, expected.Normalized)
	}

	cases := []struct {
		file string
		kdf  string
		path string
	}{
		{filepath.Join(erc, "scrypt_keystore.json"), KDFScrypt, "m/12381/60/3141592653/589793238"},
		{filepath.Join(erc, "pbkdf2_keystore.json"), KDFPBKDF2, "m/12381/60/0/0"},
		{filepath.Join(w3s, "scryptTestVector.json"), KDFScrypt, "m/12381/60/3141592653/589793238"},
		{filepath.Join(w3s, "pbkdf2TestVector.json"), KDFPBKDF2, "m/12381/60/0/0"},
		{filepath.Join(w3s, "scryptExtraFieldTestVector.json"), KDFScrypt, "m/12381/60/3141592653/589793238"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(filepath.Dir(c.file))+"/"+filepath.Base(c.file), func(t *testing.T) {
			ks, err := ParseKeystore(readFile(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if ks.KDF.Function != c.kdf || ks.Path != c.path || ks.PublicKey == nil || ks.PublicKey.String() != vectorPubkey {
				t.Fatalf("metadata: kdf=%s path=%q pubkey=%v", ks.KDF.Function, ks.Path, ks.PublicKey)
			}
			start := time.Now()
			sk, err := ks.Decrypt([]byte(vectorPassword))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s decrypt: %v", ks.KDF, time.Since(start))
			if got := secretHex(sk); got != vectorSecret {
				t.Fatalf("secret = %s, want %s", got, vectorSecret)
			}
			if sk.PublicKey().String() != vectorPubkey {
				t.Fatalf("pubkey = %s", sk.PublicKey())
			}
			// The already-normalised bytes are a fixed point of the processing
			// (checked on the fast KDF only, to keep the run short).
			if c.kdf != KDFPBKDF2 {
				return
			}
			if _, err := ks.Decrypt(norm); err != nil {
				t.Fatalf("normalised password: %v", err)
			}
		})
	}
}

// TestWeb3SignerNegativeVectors: every rejected Web3Signer vector fails in
// ParseKeystore with ErrMalformed naming the offending field.
func TestWeb3SignerNegativeVectors(t *testing.T) {
	dir := sharedTestdata(t, "web3signer", "bls-keystore-test-vectors")
	cases := []struct {
		file, field, reason string
	}{
		{"missingCrypto.json", "crypto", "missing"},
		{"missingKdfSectionTestVector.json", "crypto.kdf.params", "missing"},
		{"missingVersion.json", "version", "missing"},
		{"v3TestVector.json", "version", "version 3 is not supported"},
		{"unsupportedChecksumFunction.json", "crypto.checksum.function", `unsupported checksum function "sha128"`},
		{"unsupportedCipherFunction.json", "crypto.cipher.function", `unsupported cipher "aes-256-ctr"`},
		{"unsupportedKdfFunction.json", "crypto.kdf.function", `unsupported kdf "pbkdf3"`},
		{"unsupportedPBKDF2Prf.json", "crypto.kdf.params.prf", `unsupported prf "hmac-sha512"`},
		{"unsupportedDkLen.json", "crypto.kdf.params.dklen", "dklen 31 is not supported"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			_, err := ParseKeystore(readFile(t, filepath.Join(dir, c.file)))
			assertMalformed(t, err, c.field, c.reason)
		})
	}
}

func assertMalformed(t *testing.T, err error, field, reason string) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want a *MalformedError", err)
	}
	if me.Field != field || !strings.Contains(me.Reason, reason) {
		t.Fatalf("err = %q (field %q), want field %q and reason containing %q", err, me.Field, field, reason)
	}
	if !strings.HasPrefix(err.Error(), "malformed key file: ") {
		t.Fatalf("message %q lacks the ErrMalformed prefix", err)
	}
}

// mutate decodes a keystore into generic JSON, applies f and re-encodes it.
func mutate(t *testing.T, data []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

// TestParseKeystoreMalformed covers each field check with a precise expectation.
func TestParseKeystoreMalformed(t *testing.T) {
	scrypt := encryptT(t, 0, "pw", KDFParams{Function: KDFScrypt, N: 16, R: 8, P: 1})
	pbkdf2 := encryptT(t, 0, "pw", KDFParams{Function: KDFPBKDF2, C: 16})
	cases := []struct {
		name          string
		base          []byte
		edit          func(m map[string]any)
		field, reason string
	}{
		{"no crypto", scrypt, func(m map[string]any) { delete(m, "crypto") }, "crypto", "missing"},
		{"crypto null", scrypt, func(m map[string]any) { m["crypto"] = nil }, "crypto", "missing"},
		{"crypto is a string", scrypt, func(m map[string]any) { m["crypto"] = "x" }, "crypto", "wrong type: got JSON string, want an object"},
		{"unknown kdf", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf")["function"] = "foo" }, "crypto.kdf.function", `unsupported kdf "foo"`},
		{"no kdf", scrypt, func(m map[string]any) { delete(obj(m, "crypto"), "kdf") }, "crypto.kdf", "missing"},
		{"no kdf function", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "kdf"), "function") }, "crypto.kdf.function", "missing"},
		{"dklen 16", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["dklen"] = 16 }, "crypto.kdf.params.dklen", "dklen 16 is not supported (must be 32)"},
		{"no dklen", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "kdf", "params"), "dklen") }, "crypto.kdf.params.dklen", "missing"},
		{"n string", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["n"] = "16" }, "crypto.kdf.params.n", "wrong type: got JSON string, want a non-negative integer"},
		{"n negative", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["n"] = -16 }, "crypto.kdf.params.n", "wrong type"},
		{"n fractional", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["n"] = 16.5 }, "crypto.kdf.params.n", "wrong type"},
		{"no n", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "kdf", "params"), "n") }, "crypto.kdf.params.n", "missing"},
		{"no r", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "kdf", "params"), "r") }, "crypto.kdf.params.r", "missing"},
		{"no p", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "kdf", "params"), "p") }, "crypto.kdf.params.p", "missing"},
		{"n not a power of two", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["n"] = 1000 }, "crypto.kdf.params.n", "not a power of two"},
		{"n too large", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["n"] = 1 << 30 }, "crypto.kdf.params.n", "exceeds the limit"},
		{"n huge", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["n"] = uint64(1) << 63 }, "crypto.kdf.params.n", "exceeds the limit"},
		{"scrypt memory", scrypt, func(m map[string]any) {
			p := obj(m, "crypto", "kdf", "params")
			p["n"], p["r"] = 1<<20, 16
		}, "crypto.kdf.params.r", "memory"},
		{"r*p huge", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["p"] = 1 << 40 }, "crypto.kdf.params.p", "work limit"},
		{"r zero", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["r"] = 0 }, "crypto.kdf.params.r", "at least 1"},
		{"pbkdf2 c too large", pbkdf2, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["c"] = 1 << 25 }, "crypto.kdf.params.c", "exceeds the limit"},
		{"pbkdf2 c zero", pbkdf2, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["c"] = 0 }, "crypto.kdf.params.c", "at least 1"},
		{"pbkdf2 no prf", pbkdf2, func(m map[string]any) { delete(obj(m, "crypto", "kdf", "params"), "prf") }, "crypto.kdf.params.prf", "missing"},
		{"pbkdf2 sha512", pbkdf2, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["prf"] = "hmac-sha512" }, "crypto.kdf.params.prf", `unsupported prf "hmac-sha512"`},
		{"no salt", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "kdf", "params"), "salt") }, "crypto.kdf.params.salt", "missing"},
		{"bad hex salt", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["salt"] = "zz" }, "crypto.kdf.params.salt", "bad hex"},
		{"huge salt", scrypt, func(m map[string]any) { obj(m, "crypto", "kdf", "params")["salt"] = strings.Repeat("ab", 2000) }, "crypto.kdf.params.salt", "limit"},
		{"no kdf params", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "kdf"), "params") }, "crypto.kdf.params", "missing"},
		{"no checksum", scrypt, func(m map[string]any) { delete(obj(m, "crypto"), "checksum") }, "crypto.checksum", "missing"},
		{"checksum sha512", scrypt, func(m map[string]any) { obj(m, "crypto", "checksum")["function"] = "sha512" }, "crypto.checksum.function", `unsupported checksum function "sha512"`},
		{"checksum short", scrypt, func(m map[string]any) { obj(m, "crypto", "checksum")["message"] = "abcd" }, "crypto.checksum.message", "has 2 bytes, want 32"},
		{"checksum bad hex", scrypt, func(m map[string]any) { obj(m, "crypto", "checksum")["message"] = strings.Repeat("g", 64) }, "crypto.checksum.message", "bad hex"},
		{"no cipher", scrypt, func(m map[string]any) { delete(obj(m, "crypto"), "cipher") }, "crypto.cipher", "missing"},
		{"aes-256", scrypt, func(m map[string]any) { obj(m, "crypto", "cipher")["function"] = "aes-256-ctr" }, "crypto.cipher.function", `unsupported cipher "aes-256-ctr"`},
		{"no iv", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "cipher", "params"), "iv") }, "crypto.cipher.params.iv", "missing"},
		{"bad hex iv", scrypt, func(m map[string]any) { obj(m, "crypto", "cipher", "params")["iv"] = "0x" + strings.Repeat("q", 32) }, "crypto.cipher.params.iv", "bad hex"},
		{"iv length", scrypt, func(m map[string]any) { obj(m, "crypto", "cipher", "params")["iv"] = "00" }, "crypto.cipher.params.iv", "has 1 bytes, want 16"},
		{"no cipher params", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "cipher"), "params") }, "crypto.cipher.params", "missing"},
		{"no ciphertext", scrypt, func(m map[string]any) { delete(obj(m, "crypto", "cipher"), "message") }, "crypto.cipher.message", "missing"},
		{"ciphertext length", scrypt, func(m map[string]any) { obj(m, "crypto", "cipher")["message"] = strings.Repeat("00", 31) }, "crypto.cipher.message", "has 31 bytes, want 32"},
		{"version 3", scrypt, func(m map[string]any) { m["version"] = 3 }, "version", "version 3 is not supported (want 4)"},
		{"version missing", scrypt, func(m map[string]any) { delete(m, "version") }, "version", "missing"},
		{"version text", scrypt, func(m map[string]any) { m["version"] = "four" }, "version", "not a number"},
		{"pubkey bad hex", scrypt, func(m map[string]any) { m["pubkey"] = "xyz" }, "pubkey", "not hex"},
		{"pubkey short", scrypt, func(m map[string]any) { m["pubkey"] = "abcd" }, "pubkey", "has 2 bytes, want 48"},
		{"pubkey not on curve", scrypt, func(m map[string]any) { m["pubkey"] = strings.Repeat("ab", 48) }, "pubkey", "not a valid G1 point"},
		{"pubkey number", scrypt, func(m map[string]any) { m["pubkey"] = 7 }, "pubkey", "wrong type: got JSON number, want a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseKeystore(mutate(t, c.base, c.edit))
			assertMalformed(t, err, c.field, c.reason)
		})
	}

	// Whole-document failures.
	docs := []struct {
		name, data, reason string
	}{
		{"empty", "", "empty file"},
		{"whitespace", " \n\t", "empty file"},
		{"array", "[1,2]", "not a JSON object"},
		{"null", "null", "not a JSON object"},
		{"truncated", string(scrypt[:len(scrypt)/2]), "unexpected end of input (truncated file?)"},
		{"trailing garbage", string(scrypt) + "}", "invalid JSON at byte"},
		{"syntax error", `{"version": 4,}`, "invalid JSON at byte"},
	}
	for _, c := range docs {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseKeystore([]byte(c.data))
			assertMalformed(t, err, "", c.reason)
		})
	}
}

// TestParseKeystoreLenient: accepted variations.
func TestParseKeystoreLenient(t *testing.T) {
	base := encryptT(t, 3, "pw", cheapKDFs[0])
	cases := []struct {
		name string
		data []byte
	}{
		{"as written", base},
		{"byte-order mark", append([]byte("\xef\xbb\xbf"), base...)},
		{"extra fields", mutate(t, base, func(m map[string]any) { m["name"] = "x"; obj(m, "crypto")["extra"] = []any{1} })},
		{"no pubkey", mutate(t, base, func(m map[string]any) { delete(m, "pubkey") })},
		{"empty pubkey", mutate(t, base, func(m map[string]any) { m["pubkey"] = "" })},
		{"0x hex", mutate(t, base, func(m map[string]any) {
			p := obj(m, "crypto", "cipher", "params")
			p["iv"] = "0x" + p["iv"].(string)
			m["pubkey"] = "0x" + m["pubkey"].(string)
		})},
		{"upper-case function names", mutate(t, base, func(m map[string]any) {
			obj(m, "crypto", "kdf")["function"] = "PBKDF2"
			obj(m, "crypto", "cipher")["function"] = "AES-128-CTR"
		})},
	}
	want := interopKey(t, 3).PublicKey()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sk, err := DecryptKeystore(c.data, []byte("pw"))
			if err != nil {
				t.Fatal(err)
			}
			if sk.PublicKey() != want {
				t.Fatalf("pubkey %s, want %s", sk.PublicKey(), want)
			}
		})
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEncryptDecryptRoundTrip(t *testing.T) {
	passwords := []string{"", "correct horse battery staple", vectorPassword, "tab\tand\nnewline\x7f\u0085", "ｆｕｌｌｗｉｄｔｈ"}
	for _, kdf := range cheapKDFs {
		for i, pw := range passwords {
			t.Run(kdf.String()+"/"+string(rune('a'+i)), func(t *testing.T) {
				sk := interopKey(t, uint64(10+i))
				data, err := Encrypt(sk, []byte(pw), kdf, "m/12381/3600/7/0/0")
				if err != nil {
					t.Fatal(err)
				}
				ks, err := ParseKeystore(data)
				if err != nil {
					t.Fatalf("own output does not parse: %v\n%s", err, data)
				}
				if ks.Path != "m/12381/3600/7/0/0" || ks.PublicKey == nil || *ks.PublicKey != sk.PublicKey() || ks.KDF.Function != kdf.Function || len(ks.KDF.Salt) != 32 {
					t.Fatalf("metadata: %+v", ks)
				}
				if !uuidV4.MatchString(ks.UUID) {
					t.Fatalf("uuid %q is not a v4 UUID", ks.UUID)
				}
				got, err := ks.Decrypt([]byte(pw))
				if err != nil {
					t.Fatal(err)
				}
				if secretHex(got) != secretHex(sk) {
					t.Fatal("round trip changed the secret")
				}
				if _, err := ks.Decrypt([]byte(pw + "x")); !errors.Is(err, ErrWrongPassword) {
					t.Fatalf("wrong password: err = %v, want ErrWrongPassword", err)
				}
			})
		}
	}
	// Two encryptions of the same key differ (random salt, IV and UUID).
	a := encryptT(t, 1, "pw", cheapKDFs[0])
	b := encryptT(t, 1, "pw", cheapKDFs[0])
	if bytes.Equal(a, b) {
		t.Fatal("Encrypt is deterministic")
	}
	// A given salt is used as is.
	kdf := cheapKDFs[1]
	kdf.Salt = bytes.Repeat([]byte{7}, 20)
	data, err := Encrypt(interopKey(t, 1), []byte("pw"), kdf, "")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := ParseKeystore(data)
	if err != nil || !bytes.Equal(ks.KDF.Salt, kdf.Salt) || ks.KDF.N != 16 || ks.KDF.R != 8 || ks.KDF.P != 1 {
		t.Fatalf("salt/params not kept: %v %+v", err, ks)
	}
}

// TestEncryptReproducesVector: with the vector's salt and IV, Encrypt writes
// exactly the vector's checksum and ciphertext.
func TestEncryptReproducesVector(t *testing.T) {
	ks, err := ParseKeystore(readFile(t, sharedTestdata(t, "eip-2333-2335-keys", "erc-2335", "pbkdf2_keystore.json")))
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := hex.DecodeString(vectorSecret)
	sk, err := NewSecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	data, err := encrypt(sk, []byte(vectorPassword), ks.KDF, ks.Path, ks.iv)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := ParseKeystore(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mine.checksum, ks.checksum) || !bytes.Equal(mine.ciphertext, ks.ciphertext) || !bytes.Equal(mine.KDF.Salt, ks.KDF.Salt) ||
		mine.KDF.C != ks.KDF.C || *mine.PublicKey != *ks.PublicKey || mine.Path != ks.Path {
		t.Fatalf("Encrypt output differs from the ERC-2335 vector:\n%s", data)
	}
}

func TestEncryptRejects(t *testing.T) {
	sk := interopKey(t, 0)
	cases := []struct {
		name string
		kdf  KDFParams
		want string
	}{
		{"unknown", KDFParams{Function: "argon2"}, `unsupported kdf "argon2"`},
		{"scrypt n=0", KDFParams{Function: KDFScrypt, R: 8, P: 1}, "power of two"},
		{"scrypt n too big", KDFParams{Function: KDFScrypt, N: 1 << 21, R: 8, P: 1}, "exceeds the limit"},
		{"pbkdf2 c=0", KDFParams{Function: KDFPBKDF2}, "at least 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Encrypt(sk, []byte("pw"), c.kdf, ""); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if _, err := Encrypt(nil, nil, cheapKDFs[0], ""); err == nil {
		t.Fatal("nil key accepted")
	}
	if _, err := Encrypt(sk, []byte{0xff, 0xfe}, cheapKDFs[0], ""); !errors.Is(err, ErrPasswordEncoding) {
		t.Fatalf("invalid UTF-8 password: err = %v", err)
	}
	if err := StandardScrypt().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := StandardPBKDF2().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDecryptErrors(t *testing.T) {
	good := encryptT(t, 4, "secret-pw", cheapKDFs[1])

	t.Run("wrong password", func(t *testing.T) {
		_, err := DecryptKeystore(good, []byte("Secret-pw"))
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "Secret-pw") {
			t.Fatal("password in error message")
		}
	})
	t.Run("corrupt ciphertext", func(t *testing.T) {
		data := mutate(t, good, func(m map[string]any) {
			c := obj(m, "crypto", "cipher")
			b, _ := hex.DecodeString(c["message"].(string))
			b[0] ^= 1
			c["message"] = hex.EncodeToString(b)
		})
		if _, err := DecryptKeystore(data, []byte("secret-pw")); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("err = %v, want ErrWrongPassword (checksum)", err)
		}
	})
	t.Run("pubkey mismatch", func(t *testing.T) {
		other := interopKey(t, 5).PublicKey()
		data := mutate(t, good, func(m map[string]any) { m["pubkey"] = hex.EncodeToString(other[:]) })
		_, err := DecryptKeystore(data, []byte("secret-pw"))
		if !errors.Is(err, ErrPubkeyMismatch) {
			t.Fatalf("err = %v, want ErrPubkeyMismatch", err)
		}
		if !strings.Contains(err.Error(), other.String()) {
			t.Fatalf("message %q does not name the declared key", err)
		}
		if strings.Contains(err.Error(), secretHex(interopKey(t, 4))) {
			t.Fatal("secret in error message")
		}
	})
	t.Run("invalid UTF-8 password", func(t *testing.T) {
		if _, err := DecryptKeystore(good, []byte("\xc3\x28")); !errors.Is(err, ErrPasswordEncoding) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for _, n := range []int{1, 10, len(good) / 3, len(good) - 2} {
			_, err := DecryptKeystore(good[:n], []byte("secret-pw"))
			var me *MalformedError
			if !errors.As(err, &me) || !errors.Is(err, ErrMalformed) || me.Reason == "" {
				t.Fatalf("truncated at %d: err = %v", n, err)
			}
		}
	})
	t.Run("password not modified", func(t *testing.T) {
		pw := []byte("secret-pw\n")
		if _, err := DecryptKeystore(good, pw); err != nil {
			t.Fatal(err) // the newline is a control code and is stripped
		}
		if string(pw) != "secret-pw\n" {
			t.Fatalf("password buffer changed to %q", pw)
		}
	})
}

func TestNormalizePassword(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"", ""},
		{"password", "password"},
		{vectorPassword, "testpassword🔑"},
		{"a\x00b\x1fc\x7fd", "abcd"},
		{"a\u0080b\u009fc\u00a0d", "abc d"}, // C1 stripped; NBSP is not a control code (NFKD maps it to a space)
		{"\r\npw\r\n", "pw"},
		{"ﬁ", "fi"},      // compatibility decomposition
		{"é", "e\u0301"}, // canonical decomposition of U+00E9
		{"e\u0301", "e\u0301"},
		{"Å", "A\u030a"}, // U+212B ANGSTROM SIGN
	}
	for _, c := range cases {
		got, err := NormalizePassword([]byte(c.in))
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("NormalizePassword(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := NormalizePassword([]byte{'a', 0x80}); !errors.Is(err, ErrPasswordEncoding) {
		t.Fatalf("lone continuation byte: err = %v", err)
	}
}

func TestScryptDecryptTime(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	data := readFile(t, sharedTestdata(t, "eip-2333-2335-keys", "erc-2335", "scrypt_keystore.json"))
	ks, err := ParseKeystore(data)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := ks.Decrypt([]byte(vectorPassword)); err != nil {
		t.Fatal(err)
	}
	t.Logf("one standard scrypt keystore (%s): %v", ks.KDF, time.Since(start))
}

// FuzzParseKeystore: ParseKeystore never panics, and every rejection is
// ErrMalformed. Accepted keystores with cheap parameters are also decrypted.
func FuzzParseKeystore(f *testing.F) {
	for _, dir := range [][]string{{"eip-2333-2335-keys", "erc-2335"}, {"eip-2333-2335-keys", "staking-deposit-cli"}, {"web3signer", "bls-keystore-test-vectors"}} {
		entries, _ := os.ReadDir(sharedTestdata(f, dir...))
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".json") {
				f.Add(readFile(f, filepath.Join(sharedTestdata(f, dir...), e.Name())))
			}
		}
	}
	for _, kdf := range cheapKDFs {
		good := encryptT(f, 0, "pw", kdf)
		f.Add(good)
		f.Add(good[:len(good)/2])
	}
	f.Add([]byte(`{"version":4,"crypto":{"kdf":{"function":"scrypt","params":{"dklen":32,"n":1e400}}}}`))
	f.Add([]byte(`{"version":4,"crypto":{"kdf":{"function":"scrypt","params":{"dklen":32,"n":1099511627776,"r":1,"p":1,"salt":""}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := ParseKeystore(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("rejection is not ErrMalformed: %v", err)
			}
			return
		}
		if err := ks.KDF.Validate(); err != nil {
			t.Fatalf("accepted out-of-limit KDF: %v", err)
		}
		cheap := (ks.KDF.Function == KDFScrypt && ks.KDF.N*ks.KDF.R*ks.KDF.P <= 1<<12) ||
			(ks.KDF.Function == KDFPBKDF2 && ks.KDF.C <= 1<<12)
		if cheap {
			_, _ = ks.Decrypt([]byte("pw"))
		}
	})
}
