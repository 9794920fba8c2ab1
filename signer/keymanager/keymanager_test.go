package keymanager_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/signer/keymanager"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

// ---------------------------------------------------------------------------------------------
// Helpers.

var kmGVR = phase0.Root{0x4b, 0x36, 0x3d, 0xb9, 0x4e}

func kmKey(t *testing.T, i uint64) *keystore.SecretKey {
	t.Helper()
	sk, err := keystore.InteropSecretKey(i)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func kmPub(t *testing.T, i uint64) keystore.PublicKey { return kmKey(t, i).PublicKey() }

func kmPath(i uint64) string { return fmt.Sprintf("m/12381/3600/%d/0/0", i) }

// kmKeystore is interop key i's EIP-2335 keystore under password (cheap pbkdf2).
func kmKeystore(t *testing.T, i uint64, password string) string {
	t.Helper()
	data, err := keystore.Encrypt(kmKey(t, i), []byte(password), keystore.DevKDF(), kmPath(i))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// kmKeystoreNoPubkey is kmKeystore without the optional "pubkey" member.
func kmKeystoreNoPubkey(t *testing.T, i uint64, password string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(kmKeystore(t, i, password)), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "pubkey")
	b, _ := json.Marshal(m)
	return string(b)
}

type kmFixture struct {
	km      *keymanager.Manager
	keys    *keyset.Set
	store   slashing.Store
	managed *keyset.Managed
	dir     string
}

// newKM builds a KeyManager over store with the interop keys readonly loaded as if from an
// operator-managed source, and loads its (possibly pre-populated) directory dir.
func newKM(t *testing.T, store slashing.Store, dir string, readonly ...uint64) *kmFixture {
	t.Helper()
	f := &kmFixture{store: store, dir: dir, managed: keyset.NewManaged(dir, 0)}
	var keys []keystore.Key
	for _, i := range readonly {
		keys = append(keys, keystore.NewLocalKey(kmKey(t, i)))
	}
	res, err := f.managed.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("managed keys did not load: %v", res.Errors)
	}
	keys = append(keys, res.Keys...) // operator sources first, as serve does
	f.keys = keyset.New(keys)
	f.km, err = keymanager.New(keymanager.Config{Managed: f.managed, Keys: f.keys, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func memoryAndSQLite(t *testing.T, fn func(t *testing.T, open func(t *testing.T) slashing.Store)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func(t *testing.T) slashing.Store { return slashingtest.NewMemory() })
	})
	t.Run("sqlite", func(t *testing.T) {
		fn(t, func(t *testing.T) slashing.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "slashing.sqlite"), sqlite.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
}

func statuses[T ~string](rs []T) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func importStatuses(rs []signer.ImportResult) []string {
	s := make([]signer.ImportStatus, len(rs))
	for i, r := range rs {
		s[i] = r.Status
	}
	return statuses(s)
}

func deleteStatuses(rs []signer.DeleteResult) []string {
	s := make([]signer.DeleteStatus, len(rs))
	for i, r := range rs {
		s[i] = r.Status
	}
	return statuses(s)
}

func wantStatuses(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: statuses %v, want %v", what, got, want)
	}
}

func (f *kmFixture) mustImport(t *testing.T, keystores, passwords []string, sp string) []signer.ImportResult {
	t.Helper()
	res, err := f.km.Import(context.Background(), keystores, passwords, sp)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(res) != len(keystores) {
		t.Fatalf("Import: %d results for %d keystores", len(res), len(keystores))
	}
	return res
}

func (f *kmFixture) mustDelete(t *testing.T, pubs ...keystore.PublicKey) signer.DeleteResponse {
	t.Helper()
	res, err := f.km.Delete(context.Background(), pubs)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if len(res.Results) != len(pubs) {
		t.Fatalf("Delete: %d results for %d pubkeys", len(res.Results), len(pubs))
	}
	return res
}

func (f *kmFixture) active(pk keystore.PublicKey) bool {
	_, ok := f.keys.Get(pk)
	return ok
}

func (f *kmFixture) files(pk keystore.PublicKey) (keystoreFile, passwordFile string) {
	return filepath.Join(f.dir, "keystores", pk.String()+".json"), filepath.Join(f.dir, "passwords", pk.String()+".txt")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func block(pk keystore.PublicKey, slot phase0.Slot, root byte) slashing.Block {
	return slashing.Block{Pubkey: phase0.BLSPubKey(pk), Slot: slot, SigningRoot: phase0.Root{root}, GenesisValidatorsRoot: kmGVR}
}

// interchangeDoc builds an EIP-3076 document with one block per (pubkey, slot, root).
type ixBlock struct {
	pk   keystore.PublicKey
	slot uint64
	root byte
}

func interchangeDoc(gvr phase0.Root, blocks ...ixBlock) string {
	type blk struct {
		Slot        string `json:"slot"`
		SigningRoot string `json:"signing_root"`
	}
	type entry struct {
		Pubkey             string `json:"pubkey"`
		SignedBlocks       []blk  `json:"signed_blocks"`
		SignedAttestations []any  `json:"signed_attestations"`
	}
	var data []entry
	for _, b := range blocks {
		data = append(data, entry{Pubkey: b.pk.String(), SignedAttestations: []any{},
			SignedBlocks: []blk{{Slot: fmt.Sprint(b.slot), SigningRoot: fmt.Sprintf("%#x", phase0.Root{b.root})}}})
	}
	doc, _ := json.Marshal(map[string]any{
		"metadata": map[string]string{"interchange_format_version": "5", "genesis_validators_root": fmt.Sprintf("%#x", gvr)},
		"data":     data,
	})
	return string(doc)
}

// parsedInterchange decodes a returned document into pubkey → history.
func parsedInterchange(t *testing.T, doc []byte) (slashing.Metadata, map[keystore.PublicKey]slashing.ValidatorHistory) {
	t.Helper()
	dec := slashing.NewDecoder(strings.NewReader(string(doc)))
	meta, err := dec.Metadata()
	if err != nil {
		t.Fatalf("returned interchange %s: %v", doc, err)
	}
	out := map[keystore.PublicKey]slashing.ValidatorHistory{}
	for {
		h, err := dec.Next()
		if err != nil {
			if err.Error() == "EOF" {
				return meta, out
			}
			t.Fatalf("returned interchange %s: %v", doc, err)
		}
		out[keystore.PublicKey(h.Pubkey)] = h
	}
}

// ---------------------------------------------------------------------------------------------
// Tests.

func TestKeyManagerLifecycle(t *testing.T) {
	memoryAndSQLite(t, func(t *testing.T, open func(t *testing.T) slashing.Store) {
		store := open(t)
		dir := filepath.Join(t.TempDir(), "keymanager")
		f := newKM(t, store, dir, 9) // key 9: operator-managed, readonly
		a, b, r, unknown := kmPub(t, 1), kmPub(t, 2), kmPub(t, 9), kmPub(t, 30)

		res := f.mustImport(t, []string{kmKeystore(t, 1, "pass-a"), kmKeystore(t, 2, "pass-b")}, []string{"pass-a", "pass-b"}, "")
		wantStatuses(t, "import", importStatuses(res), "imported", "imported")
		if res[0].Pubkey != a || res[1].Pubkey != b {
			t.Errorf("import results name pubkeys %s, %s", res[0].Pubkey, res[1].Pubkey)
		}
		if !f.active(a) || !f.active(b) {
			t.Fatal("imported keys are not in the key set")
		}

		// List: sorted, imported keys with their derivation path, the operator key readonly.
		list := f.km.List()
		if len(list) != 3 {
			t.Fatalf("List: %d keys, want 3", len(list))
		}
		for i := 1; i < len(list); i++ {
			if strings.Compare(list[i-1].Pubkey.String(), list[i].Pubkey.String()) >= 0 {
				t.Errorf("List not sorted by pubkey")
			}
		}
		for _, k := range list {
			switch k.Pubkey {
			case a, b:
				want := kmPath(1)
				if k.Pubkey == b {
					want = kmPath(2)
				}
				if k.Readonly || k.DerivationPath != want {
					t.Errorf("imported %s: readonly %v path %q, want false %q", k.Pubkey, k.Readonly, k.DerivationPath, want)
				}
			case r:
				if !k.Readonly || k.DerivationPath != "" {
					t.Errorf("operator key: readonly %v path %q, want true \"\"", k.Readonly, k.DerivationPath)
				}
			default:
				t.Errorf("unexpected key %s", k.Pubkey)
			}
		}

		// Persisted files: mode 0600, the keystore exactly as imported.
		for _, pk := range []keystore.PublicKey{a, b} {
			ksFile, pwFile := f.files(pk)
			for _, p := range []string{ksFile, pwFile} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatalf("persisted file: %v", err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
				}
			}
		}

		// Duplicates: imported before, operator key, and declared twice in one request.
		res = f.mustImport(t, []string{kmKeystore(t, 1, "x"), kmKeystore(t, 9, "y"), kmKeystore(t, 3, "c"), kmKeystore(t, 3, "c")},
			[]string{"x", "y", "c", "c"}, "")
		wantStatuses(t, "duplicates", importStatuses(res), "duplicate", "duplicate", "imported", "duplicate")
		c := kmPub(t, 3)

		// History for a: one block, recorded through the store as signing would.
		if err := store.SignBlock(context.Background(), block(a, 100, 1)); err != nil {
			t.Fatal(err)
		}

		// Delete: a (deleted), readonly r (error), unknown (not_found), a again (not_active).
		del := f.mustDelete(t, a, r, unknown, a)
		wantStatuses(t, "delete", deleteStatuses(del.Results), "deleted", "error", "not_found", "not_active")
		if msg := del.Results[1].Message; !strings.Contains(msg, "readonly") {
			t.Errorf("readonly delete message %q does not say readonly", msg)
		}
		meta, hist := parsedInterchange(t, del.SlashingProtection)
		if meta.GenesisValidatorsRoot != kmGVR {
			t.Errorf("interchange root %#x", meta.GenesisValidatorsRoot)
		}
		if len(hist) != 1 || len(hist[a].SignedBlocks) != 1 || hist[a].SignedBlocks[0].Slot != 100 {
			t.Errorf("interchange holds %v, want a's block at slot 100 only", hist)
		}
		if f.active(a) || !f.active(r) || !f.active(b) {
			t.Error("key set after delete: want a gone, b and the readonly key still there")
		}
		for _, p := range []string{first(f.files(a)), second(f.files(a))} {
			if exists(p) {
				t.Errorf("%s still exists after delete", p)
			}
		}
		// Disabled in the database: even a fresh slot is refused.
		if err := store.SignBlock(context.Background(), block(a, 200, 2)); !errors.Is(err, slashing.ErrSlashable) {
			t.Errorf("block for a deleted key: %v, want refused", err)
		}

		// Delete again: not_active, history still returned. A deleted key without history (c)
		// gets an empty entry.
		del = f.mustDelete(t, a, c)
		wantStatuses(t, "delete again", deleteStatuses(del.Results), "not_active", "deleted")
		_, hist = parsedInterchange(t, del.SlashingProtection)
		if len(hist[a].SignedBlocks) != 1 {
			t.Errorf("second delete lost a's history: %v", hist)
		}
		if h, ok := hist[c]; !ok || len(h.SignedBlocks)+len(h.SignedAttestations) != 0 {
			t.Errorf("deleted key without history: entry %v present=%v, want an empty entry", h, ok)
		}

		// Restart: a new KeyManager over the same directory and database finds b only.
		g := newKM(t, store, dir, 9)
		if !g.active(b) || g.active(a) || g.active(c) {
			t.Fatalf("after restart: b %v a %v c %v, want only b", g.active(b), g.active(a), g.active(c))
		}
		for _, k := range g.km.List() {
			if k.Pubkey == b && (k.Readonly || k.DerivationPath != kmPath(2)) {
				t.Errorf("reloaded b: readonly %v path %q", k.Readonly, k.DerivationPath)
			}
		}

		// Import a again: enabled again, the old history still applies.
		res = g.mustImport(t, []string{kmKeystore(t, 1, "new")}, []string{"new"}, "")
		wantStatuses(t, "reimport", importStatuses(res), "imported")
		if err := store.SignBlock(context.Background(), block(a, 200, 2)); err != nil {
			t.Errorf("re-imported key: %v", err)
		}
		if err := store.SignBlock(context.Background(), block(a, 100, 9)); !errors.Is(err, slashing.ErrSlashable) {
			t.Errorf("double proposal after re-import: %v, want refused", err)
		}
	})
}

func first(a, _ string) string  { return a }
func second(_, b string) string { return b }

func TestKeyManagerImportErrors(t *testing.T) {
	f := newKM(t, slashingtest.NewMemory(), t.TempDir())
	ksA := kmKeystore(t, 1, "right")
	res := f.mustImport(t,
		[]string{ksA, kmKeystore(t, 2, "pw-b"), `{"version":4}`, "not json", kmKeystoreNoPubkey(t, 3, "pw-c")},
		[]string{"wrong-password-xyz", "pw-b", "p", "p", "pw-c"}, "")
	wantStatuses(t, "mixed", importStatuses(res), "error", "imported", "error", "error", "imported")
	if !strings.Contains(res[0].Message, "wrong password") {
		t.Errorf("wrong password message: %q", res[0].Message)
	}
	for _, r := range res {
		if strings.Contains(r.Message, "wrong-password-xyz") {
			t.Errorf("a message contains the password: %q", r.Message)
		}
	}
	if res[2].Message == "" || res[3].Message == "" {
		t.Errorf("malformed keystores without a message: %+v", res)
	}
	if f.active(kmPub(t, 1)) || !f.active(kmPub(t, 2)) || !f.active(kmPub(t, 3)) {
		t.Error("key set: want keys 2 and 3 only")
	}
	if ksFile, _ := f.files(kmPub(t, 1)); exists(ksFile) {
		t.Error("a keystore that failed to decrypt was persisted")
	}
	// Without a declared pubkey the duplicate is found after decryption.
	res = f.mustImport(t, []string{kmKeystoreNoPubkey(t, 2, "pw-b")}, []string{"pw-b"}, "")
	wantStatuses(t, "undeclared duplicate", importStatuses(res), "duplicate")

	// The request as a whole.
	if _, err := f.km.Import(context.Background(), []string{ksA}, nil, ""); !errors.Is(err, signer.ErrInvalidRequest) {
		t.Errorf("length mismatch: %v, want ErrInvalidRequest", err)
	}
	res, err := f.km.Import(context.Background(), nil, nil, "")
	if err != nil || len(res) != 0 {
		t.Errorf("empty import: %v %v", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.km.Import(ctx, []string{ksA}, []string{"right"}, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled import: %v", err)
	}
	if f.active(kmPub(t, 1)) {
		t.Error("a cancelled import activated a key")
	}
}

func TestKeyManagerPasswordFileRule(t *testing.T) {
	// Passwords are stored so that the directory loader reads them back: trailing newlines and
	// Unicode survive the round trip (EIP-2335 drops control characters anyway).
	store := slashingtest.NewMemory()
	dir := t.TempDir()
	f := newKM(t, store, dir)
	pws := []string{"pässwörd with spaces ", "line\n", "\u00e9t\u00e9"}
	var kss []string
	for i, pw := range pws {
		kss = append(kss, kmKeystore(t, uint64(10+i), pw))
	}
	wantStatuses(t, "import", importStatuses(f.mustImport(t, kss, pws, "")), "imported", "imported", "imported")
	g := newKM(t, store, dir) // fails the test on any load error
	for i := range pws {
		if !g.active(kmPub(t, uint64(10+i))) {
			t.Errorf("key %d not reloaded", 10+i)
		}
	}
}

// orderingStore checks, while the interchange is imported and the key is enabled, that the key
// is not active yet.
type orderingStore struct {
	slashing.Store
	keys       *keyset.Set
	mu         sync.Mutex
	violations []string
	failEnable error
}

func (s *orderingStore) check(op string, pk phase0.BLSPubKey) {
	if s.keys == nil {
		return
	}
	if _, ok := s.keys.Get(keystore.PublicKey(pk)); ok {
		s.mu.Lock()
		s.violations = append(s.violations, fmt.Sprintf("%s(%#x) while the key was active", op, pk[:4]))
		s.mu.Unlock()
	}
}

func (s *orderingStore) ImportValidator(ctx context.Context, gvr phase0.Root, h slashing.ValidatorHistory) error {
	s.check("ImportValidator", h.Pubkey)
	return s.Store.ImportValidator(ctx, gvr, h)
}

func (s *orderingStore) SetEnabled(ctx context.Context, pk phase0.BLSPubKey, enabled bool) error {
	if enabled {
		s.check("SetEnabled(true)", pk)
	}
	if s.failEnable != nil {
		return s.failEnable
	}
	return s.Store.SetEnabled(ctx, pk, enabled)
}

func TestKeyManagerImportSlashingProtection(t *testing.T) {
	memoryAndSQLite(t, func(t *testing.T, open func(t *testing.T) slashing.Store) {
		st := &orderingStore{Store: open(t)}
		f := newKM(t, st, t.TempDir(), 9)
		st.keys = f.keys
		a, r, other := kmPub(t, 1), kmPub(t, 9), kmPub(t, 5)
		doc := interchangeDoc(kmGVR, ixBlock{a, 50, 1}, ixBlock{r, 50, 2}, ixBlock{other, 50, 3})

		res := f.mustImport(t, []string{kmKeystore(t, 1, "p")}, []string{"p"}, doc)
		wantStatuses(t, "import", importStatuses(res), "imported")
		if len(st.violations) > 0 {
			t.Errorf("history or enable applied after activation: %v", st.violations)
		}
		ctx := context.Background()
		if err := st.SignBlock(ctx, block(a, 50, 7)); !errors.Is(err, slashing.ErrSlashable) {
			t.Errorf("imported history not applied: %v", err)
		}
		if err := st.SignBlock(ctx, block(a, 50, 1)); err != nil {
			t.Errorf("identical repeat of an imported block: %v", err)
		}
		// Only the imported key's entry was imported.
		if err := st.SignBlock(ctx, block(r, 50, 9)); err != nil {
			t.Errorf("entry of a key not being imported was applied: %v", err)
		}
		var exported []phase0.BLSPubKey
		_ = st.ExportValidators(ctx, []phase0.BLSPubKey{phase0.BLSPubKey(other)}, func(h slashing.ValidatorHistory) error {
			exported = append(exported, h.Pubkey)
			return nil
		})
		if len(exported) != 0 {
			t.Errorf("entry of an unrelated key was imported")
		}

		// A bad document refuses the whole request before anything changes.
		for name, bad := range map[string]string{
			"malformed":     `{"metadata":{}`,
			"other network": interchangeDoc(phase0.Root{0xee}, ixBlock{kmPub(t, 2), 1, 1}),
			"bad entry":     strings.Replace(interchangeDoc(kmGVR, ixBlock{kmPub(t, 2), 1, 1}), `"slot":"1"`, `"slot":1`, 1),
		} {
			_, err := f.km.Import(ctx, []string{kmKeystore(t, 2, "p")}, []string{"p"}, bad)
			if !errors.Is(err, signer.ErrInvalidRequest) {
				t.Errorf("%s: %v, want ErrInvalidRequest", name, err)
			}
			if f.active(kmPub(t, 2)) {
				t.Fatalf("%s: key imported despite the bad document", name)
			}
			if ksFile, _ := f.files(kmPub(t, 2)); exists(ksFile) {
				t.Fatalf("%s: keystore persisted despite the bad document", name)
			}
		}
	})
}

func TestKeyManagerEnableFailure(t *testing.T) {
	store := &orderingStore{Store: slashingtest.NewMemory()}
	f := newKM(t, store, t.TempDir())
	f.mustImport(t, []string{kmKeystore(t, 1, "p")}, []string{"p"}, "")
	a := kmPub(t, 1)

	store.failEnable = fmt.Errorf("%w: disk on fire", slashing.ErrUnavailable)
	// Delete: the key cannot be disabled, so it stays active and its files stay.
	del := f.mustDelete(t, a)
	wantStatuses(t, "delete", deleteStatuses(del.Results), "error")
	if !strings.Contains(del.Results[0].Message, "stays active") {
		t.Errorf("message %q", del.Results[0].Message)
	}
	if !f.active(a) {
		t.Error("a key that could not be disabled was removed")
	}
	if ksFile, _ := f.files(a); !exists(ksFile) {
		t.Error("files of a key that could not be disabled were removed")
	}
	if strings.Contains(string(del.SlashingProtection), a.String()) {
		t.Errorf("interchange holds a key in error: %s", del.SlashingProtection)
	}
	for _, k := range f.km.List() {
		if k.Pubkey == a && k.Readonly {
			t.Error("restored key became readonly")
		}
	}
	// Import: a key that cannot be enabled is not imported and leaves no files.
	res := f.mustImport(t, []string{kmKeystore(t, 2, "p")}, []string{"p"}, "")
	wantStatuses(t, "import", importStatuses(res), "error")
	if f.active(kmPub(t, 2)) {
		t.Error("key active although it could not be enabled")
	}
	if ksFile, pwFile := f.files(kmPub(t, 2)); exists(ksFile) || exists(pwFile) {
		t.Error("files left behind by a failed import")
	}
}

func TestKeyManagerNullInterchange(t *testing.T) {
	// No genesis validators root yet (nothing signed or imported): Web3Signer's empty document.
	f := newKM(t, slashingtest.NewMemory(), t.TempDir())
	f.mustImport(t, []string{kmKeystore(t, 1, "p")}, []string{"p"}, "")
	del := f.mustDelete(t, kmPub(t, 1))
	wantStatuses(t, "delete", deleteStatuses(del.Results), "deleted")
	var doc struct {
		Metadata struct {
			Version string  `json:"interchange_format_version"`
			GVR     *string `json:"genesis_validators_root"`
		} `json:"metadata"`
		Data []any `json:"data"`
	}
	if err := json.Unmarshal(del.SlashingProtection, &doc); err != nil || doc.Metadata.Version != "5" || doc.Metadata.GVR != nil || doc.Data == nil || len(doc.Data) != 0 {
		t.Errorf("document %s (%v)", del.SlashingProtection, err)
	}
}

func TestKeyManagerReadonlyWhenOperatorSourceWins(t *testing.T) {
	// The same key persisted by the keymanager and loaded from an operator source (listed first,
	// so its key object is the active one): the key is readonly.
	store := slashingtest.NewMemory()
	dir := t.TempDir()
	f := newKM(t, store, dir)
	f.mustImport(t, []string{kmKeystore(t, 1, "p")}, []string{"p"}, "")
	g := newKM(t, store, dir, 1)
	for _, k := range g.km.List() {
		if !k.Readonly {
			t.Errorf("%s: readonly false, want true", k.Pubkey)
		}
	}
	del := g.mustDelete(t, kmPub(t, 1))
	wantStatuses(t, "delete", deleteStatuses(del.Results), "error")
	if !g.active(kmPub(t, 1)) {
		t.Error("readonly key removed")
	}
}

func TestKeyManagerDeletesOrphanFiles(t *testing.T) {
	// Files persisted here but the key not loaded (its load failed, say): Delete removes them,
	// disables the key and reports not_active with an (empty) entry.
	store := slashingtest.NewMemory()
	dir := t.TempDir()
	f := newKM(t, store, dir)
	f.mustImport(t, []string{kmKeystore(t, 1, "p")}, []string{"p"}, "")
	if err := store.SignBlock(context.Background(), block(kmPub(t, 1), 5, 1)); err != nil {
		t.Fatal(err)
	}
	_, pwFile := f.files(kmPub(t, 1))
	if err := os.WriteFile(pwFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	managed := keyset.NewManaged(dir, 0)
	res, err := managed.Load(context.Background())
	if err != nil || len(res.Keys) != 0 || len(res.Errors) != 1 {
		t.Fatalf("load with a wrong password file: %d keys, %v, %v", len(res.Keys), res.Errors, err)
	}
	keys := keyset.New(nil)
	km, err := keymanager.New(keymanager.Config{Managed: managed, Keys: keys, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	del, err := km.Delete(context.Background(), []keystore.PublicKey{kmPub(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "delete", deleteStatuses(del.Results), "not_active")
	if ksFile, _ := f.files(kmPub(t, 1)); exists(ksFile) || exists(pwFile) {
		t.Error("orphan files not removed")
	}
	if _, hist := parsedInterchange(t, del.SlashingProtection); len(hist[kmPub(t, 1)].SignedBlocks) != 1 {
		t.Errorf("orphan history: %v", hist)
	}
	if err := store.SignBlock(context.Background(), block(kmPub(t, 1), 6, 1)); !errors.Is(err, slashing.ErrSlashable) {
		t.Errorf("orphan key still enabled: %v", err)
	}
}

func TestKeyManagerConcurrentImports(t *testing.T) {
	f := newKM(t, slashingtest.NewMemory(), t.TempDir())
	ks := kmKeystore(t, 1, "p")
	const n = 6
	results := make([]signer.ImportStatus, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := f.km.Import(context.Background(), []string{ks}, []string{"p"}, "")
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res[0].Status
		})
	}
	wg.Wait()
	imported := 0
	for _, s := range results {
		switch s {
		case signer.ImportImported:
			imported++
		case signer.ImportDuplicate:
		default:
			t.Errorf("status %q", s)
		}
	}
	if imported != 1 {
		t.Errorf("%d concurrent imports of one key succeeded, want 1 (%v)", imported, results)
	}
	// Concurrent deletes with signing lookups: exactly one reports deleted.
	deleted := make([]signer.DeleteStatus, n)
	for i := range n {
		wg.Go(func() {
			res, err := f.km.Delete(context.Background(), []keystore.PublicKey{kmPub(t, 1)})
			if err != nil {
				t.Error(err)
				return
			}
			deleted[i] = res.Results[0].Status
		})
		wg.Go(func() { f.keys.Get(kmPub(t, 1)) })
	}
	wg.Wait()
	if c := slices.Index(deleted, signer.DeleteDeleted); c < 0 || slices.Index(deleted[c+1:], signer.DeleteDeleted) >= 0 {
		t.Errorf("concurrent deletes: %v, want exactly one deleted", deleted)
	}
}

func TestNewKeyManagerRequiresCollaborators(t *testing.T) {
	if _, err := keymanager.New(keymanager.Config{}); err == nil {
		t.Error("NewKeyManager accepted an empty config")
	}
}
