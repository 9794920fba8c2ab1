// Package ssz runs the consensus-spec ssz_static vectors (hash_tree_root) for the container
// types the signer hashes, with the preset-aware hasher of package signer.
//
// VIGIL_SPEC_SSZ_DIR is walked recursively (default: shared/testdata, resolved from the
// package directory). Every directory laid out as
//
//	<preset>/<fork>/ssz_static/<Type>/<handler>/<case>/
//
// is one case, with roots.yaml ({root: 0x…}) and at least one of serialized.ssz,
// serialized.ssz_snappy (snappy block format) and value.yaml. For each case, with the
// hasher signer.PresetSSZ(<preset>) and the go-eth2-client type mapped from <fork>/<Type>:
//
//   - serialized bytes are decoded, must re-encode to the same bytes, and must hash to root;
//   - value.yaml is decoded into the same type (field names are the spec's snake_case
//     names; see decodeValue), must hash to root and, when serialized bytes exist, must
//     encode to them.
//
// Types the signer does not hash are counted and logged as skipped. The test fails when the
// directory is missing or no case ran.
//
// The phase0 vectors in shared/testdata come from eth2.0-spec-tests v0.12.3 (2020), an
// older spec release than the final phase0 (v1.0.0) that go-eth2-client implements. For the
// twelve phase0 types present (AggregateAndProof, Attestation, AttestationData, BeaconBlock,
// BeaconBlockHeader, Checkpoint, DepositData, DepositMessage, Fork, ForkData, SigningData,
// VoluntaryExit) the encoding did not change: the v0.12.3 containers have the same fields,
// field order and field types as the final phase0 containers, and the list limits they use
// (MAX_VALIDATORS_PER_COMMITTEE=2048, MAX_PROPOSER_SLASHINGS=16, MAX_ATTESTER_SLASHINGS=2,
// MAX_ATTESTATIONS=128, MAX_DEPOSITS=16, MAX_VOLUNTARY_EXITS=16,
// DEPOSIT_CONTRACT_TREE_DEPTH=32) are the same in the v0.12.3 minimal preset and in the
// final minimal and mainnet presets. This runner verifies it rather than assuming it: all
// 67 cases decode into the go-eth2-client v0.29.0 phase0 types, re-encode byte for byte,
// hash to the published root, and their value.yaml field names map one to one onto the Go
// fields (decodeValue is strict). So no phase0 type is excluded.
package ssz

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/altair"
	"github.com/attestantio/go-eth2-client/spec/electra"
	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/goccy/go-yaml"
	dynssz "github.com/pk910/dynamic-ssz"

	"github.com/vigil-signer/vigil/signer"
)

func vectorDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VIGIL_SPEC_SSZ_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "testdata")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("SSZ vector directory (VIGIL_SPEC_SSZ_DIR): %v", err)
	}
	if !fi.IsDir() {
		t.Fatalf("SSZ vector directory (VIGIL_SPEC_SSZ_DIR) %s is not a directory", dir)
	}
	return dir
}

// forks are the consensus fork directory names, oldest first.
var forks = []string{"phase0", "altair", "bellatrix", "capella", "deneb", "electra", "fulu"}

// newObject returns a new zero value (pointer) of the go-eth2-client type for fork/typ, or
// the reason the signer does not hash that type.
func newObject(fork, typ string) (any, string) {
	f := slices.Index(forks, fork)
	if f < 0 {
		return nil, "fork not known to the signer"
	}
	altairOn, electraOn := f >= 1, f >= 5
	switch typ {
	case "AttestationData":
		return &phase0.AttestationData{}, ""
	case "Checkpoint":
		return &phase0.Checkpoint{}, ""
	case "BeaconBlockHeader":
		return &phase0.BeaconBlockHeader{}, ""
	case "DepositData":
		return &phase0.DepositData{}, ""
	case "DepositMessage":
		return &phase0.DepositMessage{}, ""
	case "Fork":
		return &phase0.Fork{}, ""
	case "ForkData":
		return &phase0.ForkData{}, ""
	case "SigningData":
		return &phase0.SigningData{}, ""
	case "VoluntaryExit":
		return &phase0.VoluntaryExit{}, ""
	case "Attestation":
		if electraOn {
			return &electra.Attestation{}, ""
		}
		return &phase0.Attestation{}, ""
	case "AggregateAndProof":
		if electraOn {
			return &electra.AggregateAndProof{}, ""
		}
		return &phase0.AggregateAndProof{}, ""
	case "ContributionAndProof":
		if altairOn {
			return &altair.ContributionAndProof{}, ""
		}
	case "SyncAggregatorSelectionData":
		if altairOn {
			return &altair.SyncAggregatorSelectionData{}, ""
		}
	case "BeaconBlock":
		switch fork {
		case "phase0":
			return &phase0.BeaconBlock{}, ""
		case "altair":
			return &altair.BeaconBlock{}, ""
		}
		// Web3Signer's BLOCK_V2 carries the full block only for phase0 and altair; later
		// forks send block_header, so the signer hashes a BeaconBlockHeader instead.
		return nil, "post-altair blocks are signed from their header"
	}
	return nil, "not hashed by the signer"
}

type sszCase struct {
	dir                                  string // as found by the walk
	rel                                  string // relative to the root, the subtest name
	preset, fork, typ, handler, name     string
	hasSSZ, hasSnappy, hasValue, hasRoot bool
}

// findCases lists every ssz_static case directory under dir, sorted by path.
func findCases(t *testing.T, dir string) []sszCase {
	t.Helper()
	var cases []sszCase
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		parts := strings.Split(rel, "/")
		n := len(parts)
		if !d.IsDir() {
			// Case files outside a case directory mean a layout this runner does not read.
			if d.Name() == "roots.yaml" && (n < 7 || parts[n-5] != "ssz_static") {
				t.Errorf("%s: roots.yaml outside a <preset>/<fork>/ssz_static/<Type>/<handler>/<case>/ directory", p)
			}
			return nil
		}
		if n < 6 || parts[n-4] != "ssz_static" {
			return nil
		}
		c := sszCase{dir: p, rel: rel, preset: parts[n-6], fork: parts[n-5], typ: parts[n-3], handler: parts[n-2], name: parts[n-1]}
		entries, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			switch e.Name() {
			case "serialized.ssz":
				c.hasSSZ = true
			case "serialized.ssz_snappy":
				c.hasSnappy = true
			case "value.yaml":
				c.hasValue = true
			case "roots.yaml":
				c.hasRoot = true
			}
		}
		cases = append(cases, c)
		return nil
	})
	if err != nil {
		t.Fatalf("walking SSZ vector directory %s: %v", dir, err)
	}
	slices.SortFunc(cases, func(a, b sszCase) int { return strings.Compare(a.rel, b.rel) })
	return cases
}

func TestSSZStatic(t *testing.T) {
	dir := vectorDir(t)
	cases := findCases(t, dir)

	hashers := map[string]*dynssz.DynSsz{}
	ran := map[string]int{}     // preset/fork/Type -> cases run
	skipped := map[string]int{} // preset/fork/Type (reason) -> cases skipped
	fromValueOnly := 0
	for _, c := range cases {
		key := c.preset + "/" + c.fork + "/" + c.typ
		if _, reason := newObject(c.fork, c.typ); reason != "" {
			skipped[key+" ("+reason+")"]++
			continue
		}
		ran[key]++
		if !c.hasSSZ && !c.hasSnappy {
			fromValueOnly++
		}
		t.Run(c.rel, func(t *testing.T) {
			ssz, ok := hashers[c.preset]
			if !ok {
				var err error
				if ssz, err = signer.PresetSSZ(c.preset); err != nil {
					t.Fatalf("%s: signer.PresetSSZ(%q): %v", c.dir, c.preset, err)
				}
				hashers[c.preset] = ssz
			}
			runCase(t, ssz, c)
		})
	}

	for _, k := range slices.Sorted(maps.Keys(ran)) {
		t.Logf("%-55s %3d cases run", k, ran[k])
	}
	for _, k := range slices.Sorted(maps.Keys(skipped)) {
		t.Logf("%-55s %3d cases skipped", k, skipped[k])
	}
	total := 0
	for _, n := range ran {
		total += n
	}
	t.Logf("%d cases run (%d checked from value.yaml only, having no serialized bytes), %d types skipped",
		total, fromValueOnly, len(skipped))
	if total == 0 {
		t.Fatalf("no ssz_static case for a hashed type in %s (set VIGIL_SPEC_SSZ_DIR to the vectors)", dir)
	}
}

func runCase(t *testing.T, ssz *dynssz.DynSsz, c sszCase) {
	if !c.hasRoot {
		t.Fatalf("%s: no roots.yaml", c.dir)
	}
	if !c.hasSSZ && !c.hasSnappy && !c.hasValue {
		t.Fatalf("%s: neither serialized.ssz, serialized.ssz_snappy nor value.yaml", c.dir)
	}
	want := readRoot(t, c.dir)

	var serialized []byte
	switch {
	case c.hasSSZ:
		b, err := os.ReadFile(filepath.Join(c.dir, "serialized.ssz"))
		if err != nil {
			t.Fatal(err)
		}
		serialized = b
	case c.hasSnappy:
		p := filepath.Join(c.dir, "serialized.ssz_snappy")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if serialized, err = snappyDecode(b); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}

	if serialized != nil {
		obj, _ := newObject(c.fork, c.typ)
		if err := ssz.UnmarshalSSZ(obj, serialized); err != nil {
			t.Fatalf("%s: decoding serialized bytes into %T: %v", c.dir, obj, err)
		}
		re, err := ssz.MarshalSSZ(obj)
		if err != nil {
			t.Fatalf("%s: re-encoding %T: %v", c.dir, obj, err)
		}
		if !bytes.Equal(re, serialized) {
			t.Errorf("%s: %T re-encodes to different bytes (%d, want %d)\n got  %x\n want %x",
				c.dir, obj, len(re), len(serialized), re, serialized)
		}
		checkRoot(t, ssz, c, obj, want, "serialized bytes")
	}

	if c.hasValue {
		p := filepath.Join(c.dir, "value.yaml")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := newObject(c.fork, c.typ)
		if err := decodeValue(data, obj); err != nil {
			t.Fatalf("%s: decoding into %T: %v", p, obj, err)
		}
		checkRoot(t, ssz, c, obj, want, "value.yaml")
		if serialized != nil {
			enc, err := ssz.MarshalSSZ(obj)
			if err != nil {
				t.Fatalf("%s: encoding %T: %v", p, obj, err)
			}
			if !bytes.Equal(enc, serialized) {
				t.Errorf("%s: %T from value.yaml encodes to bytes other than the serialized ones\n got  %x\n want %x",
					p, obj, enc, serialized)
			}
		}
	}
}

func checkRoot(t *testing.T, ssz *dynssz.DynSsz, c sszCase, obj any, want [32]byte, from string) {
	t.Helper()
	got, err := ssz.HashTreeRoot(obj)
	if err != nil {
		t.Fatalf("%s: hash_tree_root of %T (from %s): %v", c.dir, obj, from, err)
	}
	if got != want {
		t.Errorf("%s: hash_tree_root of %T (from %s, preset %s) = %#x, roots.yaml has %#x",
			c.dir, obj, from, c.preset, got, want)
	}
}

func readRoot(t *testing.T, dir string) [32]byte {
	t.Helper()
	p := filepath.Join(dir, "roots.yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Old releases also had signing_root; only root is read.
	var r struct {
		Root string `yaml:"root"`
	}
	if err := yaml.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	b, err := unhex(r.Root)
	if err != nil || len(b) != 32 {
		t.Fatalf("%s: root %q is not 0x-prefixed 32-byte hex", p, r.Root)
	}
	return [32]byte(b)
}

func unhex(s string) ([]byte, error) {
	if !strings.HasPrefix(s, "0x") {
		return nil, fmt.Errorf("%q is not 0x-prefixed hex", s)
	}
	return hex.DecodeString(s[2:])
}

// decodeValue fills obj (a pointer to a go-eth2-client container) from an ssz_static
// value.yaml. It walks the Go type by reflection rather than using go-eth2-client's own
// YAML/JSON decoders (which use strings for integers, and which some types such as
// altair.SyncAggregatorSelectionData do not have). Mapping rules:
//
//   - a YAML key matches the exported field whose name equals it case-insensitively once
//     underscores are removed (randao_reveal -> RANDAOReveal, attestation_1 ->
//     Attestation1); "pubkey" is go-eth2-client's PublicKey;
//   - every key must match a field and every field must be present;
//   - unsigned integers are YAML integers; byte arrays and byte slices (including bitlists
//     and bitvectors, given as the hex of their SSZ encoding) are 0x hex strings; other
//     slices and arrays are YAML sequences.
//
// goccy/go-yaml v1.9.2 saturates an out-of-range integer to MaxUint64 instead of failing;
// that changes the value, so it can only make a root check fail, never pass.
func decodeValue(data []byte, obj any) error {
	var tree any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		return err
	}
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("decodeValue needs a non-nil pointer, got %T", obj)
	}
	return assign(v.Elem(), tree, "value")
}

var fieldAliases = map[string]string{"pubkey": "publickey"}

func normalize(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", ""))
}

func assign(v reflect.Value, y any, path string) error {
	t := v.Type()
	switch t.Kind() {
	case reflect.Pointer:
		if y == nil {
			return fmt.Errorf("%s: null value", path)
		}
		p := reflect.New(t.Elem())
		if err := assign(p.Elem(), y, path); err != nil {
			return err
		}
		v.Set(p)
		return nil

	case reflect.Struct:
		m, ok := y.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want a mapping for %s, got %T", path, t, y)
		}
		fields := map[string]int{}
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				fields[normalize(t.Field(i).Name)] = i
			}
		}
		set := map[int]bool{}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			name := normalize(k)
			if a, ok := fieldAliases[name]; ok {
				name = a
			}
			i, ok := fields[name]
			if !ok {
				return fmt.Errorf("%s: key %q has no field in %s", path, k, t)
			}
			if err := assign(v.Field(i), m[k], path+"."+k); err != nil {
				return err
			}
			set[i] = true
		}
		for _, i := range slices.Sorted(maps.Values(fields)) {
			if !set[i] {
				return fmt.Errorf("%s: field %s.%s missing", path, t, t.Field(i).Name)
			}
		}
		return nil

	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		switch n := y.(type) {
		case uint64:
			u = n
		case int64:
			if n < 0 {
				return fmt.Errorf("%s: negative integer %d", path, n)
			}
			u = uint64(n)
		case int:
			if n < 0 {
				return fmt.Errorf("%s: negative integer %d", path, n)
			}
			u = uint64(n)
		default:
			return fmt.Errorf("%s: want an integer for %s, got %T (%v)", path, t, y, y)
		}
		if v.OverflowUint(u) {
			return fmt.Errorf("%s: %d overflows %s", path, u, t)
		}
		v.SetUint(u)
		return nil

	case reflect.Bool:
		b, ok := y.(bool)
		if !ok {
			return fmt.Errorf("%s: want a bool, got %T", path, y)
		}
		v.SetBool(b)
		return nil

	case reflect.Array, reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			s, ok := y.(string)
			if !ok {
				return fmt.Errorf("%s: want 0x hex for %s, got %T", path, t, y)
			}
			b, err := unhex(s)
			if err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			if t.Kind() == reflect.Array {
				if len(b) != t.Len() {
					return fmt.Errorf("%s: %d bytes for %s", path, len(b), t)
				}
				reflect.Copy(v, reflect.ValueOf(b))
				return nil
			}
			v.Set(reflect.ValueOf(b).Convert(t))
			return nil
		}
		seq, ok := y.([]any)
		if !ok {
			return fmt.Errorf("%s: want a sequence for %s, got %T", path, t, y)
		}
		if t.Kind() == reflect.Array {
			if len(seq) != t.Len() {
				return fmt.Errorf("%s: %d elements for %s", path, len(seq), t)
			}
		} else {
			v.Set(reflect.MakeSlice(t, len(seq), len(seq)))
		}
		for i, e := range seq {
			if err := assign(v.Index(i), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s: unsupported Go type %s", path, t)
}

// snappyDecode decodes the snappy block format (not the framed/stream format), which is
// how consensus-spec-tests compresses serialized.ssz_snappy: a uvarint decoded length,
// then literal and copy elements.
func snappyDecode(src []byte) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > math.MaxUint32 {
		return nil, errors.New("snappy: bad decoded-length header")
	}
	if n > 1<<28 {
		return nil, fmt.Errorf("snappy: decoded length %d is implausibly large", n)
	}
	src = src[k:]
	dst := make([]byte, 0, int(n))
	for len(src) > 0 {
		tag := src[0]
		switch tag & 3 {
		case 0: // literal
			length := uint64(tag >> 2)
			src = src[1:]
			if length >= 60 {
				extra := int(length - 59) // 1..4 little-endian length bytes
				if len(src) < extra {
					return nil, errors.New("snappy: truncated literal length")
				}
				length = 0
				for i := extra - 1; i >= 0; i-- {
					length = length<<8 | uint64(src[i])
				}
				src = src[extra:]
			}
			length++
			if length > uint64(len(src)) {
				return nil, errors.New("snappy: truncated literal")
			}
			dst = append(dst, src[:length]...)
			src = src[length:]
		default: // copy
			var length, offset int
			switch tag & 3 {
			case 1:
				if len(src) < 2 {
					return nil, errors.New("snappy: truncated copy")
				}
				length = 4 + int(tag>>2&7)
				offset = int(tag>>5)<<8 | int(src[1])
				src = src[2:]
			case 2:
				if len(src) < 3 {
					return nil, errors.New("snappy: truncated copy")
				}
				length = 1 + int(tag>>2)
				offset = int(binary.LittleEndian.Uint16(src[1:3]))
				src = src[3:]
			case 3:
				if len(src) < 5 {
					return nil, errors.New("snappy: truncated copy")
				}
				length = 1 + int(tag>>2)
				offset = int(binary.LittleEndian.Uint32(src[1:5]))
				src = src[5:]
			}
			if offset <= 0 || offset > len(dst) {
				return nil, fmt.Errorf("snappy: copy offset %d outside the %d bytes decoded", offset, len(dst))
			}
			for i := 0; i < length; i++ { // byte by byte: the copy may overlap its output
				dst = append(dst, dst[len(dst)-offset])
			}
		}
		if uint64(len(dst)) > n {
			return nil, fmt.Errorf("snappy: output exceeds the declared %d bytes", n)
		}
	}
	if uint64(len(dst)) != n {
		return nil, fmt.Errorf("snappy: decoded %d bytes, header says %d", len(dst), n)
	}
	return dst, nil
}

// TestSnappyDecode checks the decoder on hand-assembled blocks covering every element kind.
func TestSnappyDecode(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789"), 7) // 70 bytes: literal with a 1-byte length
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"empty", []byte{0x00}, []byte{}},
		{"literal", []byte{0x03, 0x08, 'a', 'b', 'c'}, []byte("abc")},
		{"literal-60+", append([]byte{70, 60 << 2, 69}, long...), long},
		// "abc" then a 1-byte-offset copy of 9 bytes at offset 3 (overlapping).
		{"copy1", []byte{12, 0x08, 'a', 'b', 'c', (9-4)<<2 | 1, 3}, []byte("abcabcabcabc")},
		// "ab" then a 2-byte-offset copy of 5 bytes at offset 2.
		{"copy2", []byte{7, 0x04, 'a', 'b', (5-1)<<2 | 2, 2, 0}, []byte("abababa")},
		// "xyz" then a 4-byte-offset copy of 3 bytes at offset 3.
		{"copy4", []byte{6, 0x08, 'x', 'y', 'z', (3-1)<<2 | 3, 3, 0, 0, 0}, []byte("xyzxyz")},
	}
	for _, tc := range tests {
		got, err := snappyDecode(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, bad := range [][]byte{
		{},                            // no header
		{0x05, 0x08, 'a', 'b', 'c'},   // header longer than the output
		{0x02, 0x08, 'a', 'b', 'c'},   // output longer than the header
		{0x04, 0x00, 'a', 0x01, 0x05}, // copy offset beyond the output
		{0x04, 0x0c, 'a'},             // truncated literal
	} {
		if got, err := snappyDecode(bad); err == nil {
			t.Errorf("snappyDecode(%x) = %x, want an error", bad, got)
		}
	}
}
