package keystore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"testing"
)

// decodeJSONNumbers decodes JSON keeping big integers exact.
func decodeJSONNumbers(t *testing.T, data []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		t.Fatal(err)
	}
}

// bigSK converts a decimal secret key to 32 big-endian bytes.
func bigSK(t *testing.T, n json.Number) [32]byte {
	t.Helper()
	x, ok := new(big.Int).SetString(n.String(), 10)
	if !ok || x.BitLen() > 256 {
		t.Fatalf("bad secret key %q", n)
	}
	var b [32]byte
	x.FillBytes(b[:])
	return b
}

func TestTreeKDFVectors(t *testing.T) {
	var v struct {
		KDFTests []struct {
			Seed       string      `json:"seed"`
			MasterSK   json.Number `json:"master_SK"`
			ChildIndex json.Number `json:"child_index"`
			ChildSK    json.Number `json:"child_SK"`
		} `json:"kdf_tests"`
	}
	decodeJSONNumbers(t, readFile(t, sharedTestdata(t, "eip-2333-2335-keys", "staking-deposit-cli", "tree_kdf.json")), &v)
	if len(v.KDFTests) != 4 {
		t.Fatalf("%d cases, want the 4 of the EIP", len(v.KDFTests))
	}
	for i, c := range v.KDFTests {
		seed, err := hex.DecodeString(c.Seed)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := c.ChildIndex.Int64()
		if err != nil || idx < 0 || idx > 1<<32-1 {
			t.Fatalf("case %d: child_index %q", i, c.ChildIndex)
		}
		master, err := DeriveMasterSK(seed)
		if err != nil {
			t.Fatal(err)
		}
		if want := bigSK(t, c.MasterSK); master != want {
			t.Errorf("case %d: master = %x, want %x", i, master, want)
		}
		child := DeriveChildSK(master, uint32(idx))
		if want := bigSK(t, c.ChildSK); child != want {
			t.Errorf("case %d: child = %x, want %x", i, child, want)
		}
		// The same through the path API.
		viaPath, err := DerivePath(seed, "m/"+c.ChildIndex.String())
		if err != nil || viaPath != child {
			t.Errorf("case %d: DerivePath = %x, %v", i, viaPath, err)
		}
	}
}

func TestTreeKDFIntermediateValues(t *testing.T) {
	var v struct {
		Seed        string      `json:"seed"`
		MasterSK    json.Number `json:"master_SK"`
		Path        string      `json:"path"`
		ChildIndex  uint32      `json:"child_index"`
		Lamport0    []string    `json:"lamport_0"`
		Lamport1    []string    `json:"lamport_1"`
		CompressedP string      `json:"compressed_lamport_PK"`
		ChildSK     json.Number `json:"child_SK"`
	}
	decodeJSONNumbers(t, readFile(t, sharedTestdata(t, "eip-2333-2335-keys", "staking-deposit-cli", "tree_kdf_intermediate.json")), &v)
	seed, _ := hex.DecodeString(v.Seed)
	master, err := DeriveMasterSK(seed)
	if err != nil {
		t.Fatal(err)
	}
	if master != bigSK(t, v.MasterSK) {
		t.Fatalf("master = %x", master)
	}
	if len(v.Lamport0) != lamportChunks || len(v.Lamport1) != lamportChunks {
		t.Fatalf("lamport chunks: %d, %d", len(v.Lamport0), len(v.Lamport1))
	}
	salt := []byte{byte(v.ChildIndex >> 24), byte(v.ChildIndex >> 16), byte(v.ChildIndex >> 8), byte(v.ChildIndex)}
	flipped := master
	for i := range flipped {
		flipped[i] = ^flipped[i]
	}
	for name, c := range map[string]struct {
		ikm  []byte
		want []string
	}{"lamport_0": {master[:], v.Lamport0}, "lamport_1": {flipped[:], v.Lamport1}} {
		got := ikmToLamportSK(c.ikm, salt)
		for i, w := range c.want {
			if h := hex.EncodeToString(got[i*32 : (i+1)*32]); h != w {
				t.Fatalf("%s[%d] = %s, want %s", name, i, h, w)
			}
		}
	}
	if pk := parentSKToLamportPK(master, v.ChildIndex); hex.EncodeToString(pk[:]) != v.CompressedP {
		t.Fatalf("compressed lamport PK = %x, want %s", pk, v.CompressedP)
	}
	if child := DeriveChildSK(master, v.ChildIndex); child != bigSK(t, v.ChildSK) {
		t.Fatalf("child = %x", child)
	}
	if viaPath, err := DerivePath(seed, v.Path); err != nil || viaPath != bigSK(t, v.ChildSK) {
		t.Fatalf("DerivePath(%s) = %x, %v", v.Path, viaPath, err)
	}
}

func TestDerivePath(t *testing.T) {
	seed := bytes.Repeat([]byte{0x42}, 32)
	master, err := DeriveMasterSK(seed)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DerivePath(seed, "m")
	if err != nil || m != master {
		t.Fatalf("m: %x %v", m, err)
	}
	want := master
	for _, i := range []uint32{12381, 3600, 0, 0, 0} {
		want = DeriveChildSK(want, i)
	}
	got, err := DerivePath(seed, "m/12381/3600/0/0/0")
	if err != nil || got != want {
		t.Fatalf("m/12381/3600/0/0/0 = %x, %v; want %x", got, err, want)
	}
	sk, err := DeriveSecretKey(seed, "m/12381/3600/0/0/0")
	if err != nil || secretHex(sk) != hex.EncodeToString(want[:]) {
		t.Fatalf("DeriveSecretKey: %v", err)
	}
	// Siblings differ.
	if other, _ := DerivePath(seed, "m/12381/3600/1/0/0"); other == got {
		t.Fatal("sibling keys are equal")
	}

	for _, bad := range []string{"", "m/", "M/1", "x/0", "/0", "m/-1", "m/4294967296", "m/0'", "m/01", "m/+1", "m//0", "m/1/"} {
		if _, err := DerivePath(seed, bad); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("%q: err = %v, want ErrInvalidPath", bad, err)
		}
	}
	if idx, err := ParsePath("m/4294967295/0"); err != nil || len(idx) != 2 || idx[0] != 4294967295 {
		t.Fatalf("ParsePath max index: %v %v", idx, err)
	}
	if _, err := DeriveMasterSK(make([]byte, 31)); err == nil {
		t.Fatal("31-byte seed accepted")
	}
	if _, err := DerivePath(make([]byte, 31), "m/0"); err == nil {
		t.Fatal("31-byte seed accepted by DerivePath")
	}
}

// TestHKDFModRInRange: derived keys are always valid BLS secrets.
func TestHKDFModRInRange(t *testing.T) {
	for i := range 64 {
		seed := bytes.Repeat([]byte{byte(i)}, 32+i)
		sk, err := DeriveMasterSK(seed)
		if err != nil {
			t.Fatal(err)
		}
		if new(big.Int).SetBytes(sk[:]).Cmp(blsOrder) >= 0 || sk == [32]byte{} {
			t.Fatalf("seed %d: key out of range", i)
		}
		if _, err := NewSecretKey(sk[:]); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
	}
}
