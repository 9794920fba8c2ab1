// Package keymanager is Vigil's keymanager service: runtime key changes through the standard
// keymanager API (/eth/v1/keystores), with their slashing-protection history (EIP-3076
// interchange). The HTTP layer drives it through the operations and result types declared in
// signer (signer.KeyInfo, signer.ImportResult, signer.DeleteResponse).
//
// Invariants:
//   - Import and Delete are serialised (one mutex); List never blocks on them.
//   - The signer's key set only ever changes by whole-set atomic swaps (compare-and-swap on the set's
//     pointer, so a concurrent Replace by someone else is never lost either).
//   - Import: the slashing-protection interchange sent with the keystores is imported (restricted
//     to the keys being imported) before any of them is persisted, enabled or made active. A key
//     is active only once its keystore and password are durably persisted and the key is enabled
//     in the slashing database.
//   - Delete, per key, in this order: (1) the key leaves the key set, so this process starts no new
//     signature with it; (2) it is disabled in the slashing database, which refuses every later
//     block or attestation for it, here and in every instance sharing the database; (3) its
//     persisted files are removed; (4) its history is exported. A slashable signature is recorded
//     before it is released, and the store serialises the record against the disable, so every
//     block or attestation this process signed, or may still sign from a request that looked the
//     key up before (1), is either in the exported history or refused.
//   - Keys loaded from operator-managed sources (keystore directories, key config files, Vault, an
//     HSM) are readonly: Delete refuses them. A key is managed (not readonly) only if the key
//     object active in the key set is the one this keymanager loaded from its own directory or
//     imported itself.
//   - Secrets and passwords never appear in results, errors or logs. Password byte copies and
//     decrypted secrets that do not become keys are zeroed (Go strings cannot be; the HTTP layer's
//     copies are left to the garbage collector).
package keymanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
)

// nullInterchange is the document returned when the database has no genesis validators root yet
// (so no history at all), as Web3Signer returns it.
const nullInterchange = `{"metadata":{"interchange_format_version":"5","genesis_validators_root":null},"data":[]}`

// Config assembles a Manager.
type Config struct {
	Managed *keyset.Managed // the directory imported keys are persisted in (and loaded from)
	Keys    *keyset.Set     // the signer's key set
	Store   slashing.Store  // the slashing-protection database
	// Workers bounds parallel keystore decryption at import (0: GOMAXPROCS). Each standard scrypt
	// keystore needs 256 MiB while it is being decrypted.
	Workers int
	Logger  *slog.Logger // audit lines (pubkeys and outcomes, never secrets); nil: none
}

// Manager implements the keymanager API operations (list, import, delete) over the signer's
// key set, the slashing-protection store and the managed key directory. It is safe for concurrent
// use.
type Manager struct {
	cfg Config
	mu  sync.Mutex // serialises Import and Delete
}

// New checks cfg and returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Managed == nil || cfg.Keys == nil || cfg.Store == nil {
		return nil, errors.New("keymanager: Managed, Keys and Store are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Manager{cfg: cfg}, nil
}

// Locker is the lock that serialises Import and Delete; a key reload takes it around its swap.
func (km *Manager) Locker() sync.Locker { return &km.mu }

// owned reports whether key (the object active in the key set for pk) is one this keymanager
// manages, and returns its entry.
func (km *Manager) owned(pk keystore.PublicKey, key keystore.Key) (keyset.ManagedKey, bool) {
	e, ok := km.cfg.Managed.Lookup(pk)
	return e, ok && e.Key == key
}

// List returns every loaded key in public-key order.
func (km *Manager) List() []signer.KeyInfo {
	pubs := km.cfg.Keys.PublicKeys()
	out := make([]signer.KeyInfo, 0, len(pubs))
	for _, pk := range pubs {
		key, ok := km.cfg.Keys.Get(pk)
		if !ok {
			continue // deleted since PublicKeys
		}
		info := signer.KeyInfo{Pubkey: pk, Readonly: true}
		if e, mine := km.owned(pk, key); mine {
			info.Readonly, info.DerivationPath = false, e.Path
		}
		out = append(out, info)
	}
	return out
}

// importItem is one keystore of an import request on its way through.
type importItem struct {
	idx      int
	raw      []byte
	ks       *keystore.Keystore
	password []byte
	sk       *keystore.SecretKey
	err      error
}

// Import imports EIP-2335 keystores (JSON documents) unlocked by passwords (same length and
// order) with an optional EIP-3076 interchange document (slashingProtection, "" for none). It
// returns one result per keystore, in order.
//
// A returned error concerns the request as a whole and means no key was imported: lengths that
// differ or an interchange document that is malformed or for another network (ErrInvalidRequest),
// a database failure (ErrUnavailable or internal). Per-keystore problems (malformed keystore,
// wrong password, I/O) are signer.ImportError results; the other keystores are still imported.
//
// Cancelling ctx stops the import only before the first change of state (while decrypting).
func (km *Manager) Import(ctx context.Context, keystores, passwords []string, slashingProtection string) ([]signer.ImportResult, error) {
	if len(keystores) != len(passwords) {
		return nil, signer.Invalid("%d keystores but %d passwords: passwords[i] must unlock keystores[i]", len(keystores), len(passwords))
	}
	out := make([]signer.ImportResult, len(keystores))
	if len(keystores) == 0 {
		return out, nil
	}
	km.mu.Lock()
	defer km.mu.Unlock()

	// A dry run validates the whole interchange document and its genesis validators root before
	// any (slow) decryption; with an empty non-nil filter nothing is written.
	if slashingProtection != "" {
		if _, err := slashing.Import(ctx, km.cfg.Store, strings.NewReader(slashingProtection), slashing.ImportOptions{Pubkeys: []phase0.BLSPubKey{}}); err != nil {
			return nil, interchangeError(err)
		}
	}

	// Parse every keystore (no KDF) and settle the duplicates that declare their pubkey.
	var items []*importItem
	for i, raw := range keystores {
		ks, err := keystore.ParseKeystore([]byte(raw))
		if err != nil {
			out[i] = signer.ImportResult{Status: signer.ImportError, Message: err.Error()}
			continue
		}
		if ks.PublicKey != nil {
			out[i].Pubkey = *ks.PublicKey
			if _, loaded := km.cfg.Keys.Get(*ks.PublicKey); loaded {
				out[i].Status = signer.ImportDuplicate
				continue
			}
		}
		items = append(items, &importItem{idx: i, raw: []byte(raw), ks: ks, password: []byte(passwords[i])})
	}
	defer func() {
		for _, it := range items {
			clear(it.password)
		}
	}()

	if err := km.decrypt(ctx, items); err != nil {
		return nil, err
	}

	// Settle the rest: decryption errors, keystores without a declared pubkey that turn out to be
	// loaded, and repeats within the request (the first one that decrypted wins).
	var fresh []*importItem
	inRequest := map[keystore.PublicKey]bool{}
	for _, it := range items {
		if it.err != nil {
			out[it.idx] = signer.ImportResult{Status: signer.ImportError, Message: it.err.Error(), Pubkey: out[it.idx].Pubkey}
			continue
		}
		pk := it.sk.PublicKey()
		out[it.idx].Pubkey = pk
		_, loaded := km.cfg.Keys.Get(pk)
		if loaded || inRequest[pk] {
			it.sk.Zero()
			it.sk = nil
			out[it.idx].Status = signer.ImportDuplicate
			continue
		}
		inRequest[pk] = true
		fresh = append(fresh, it)
	}
	if len(fresh) == 0 {
		return out, nil
	}

	// From here on state changes: finish even if the caller goes away.
	ctx = context.WithoutCancel(ctx)
	if slashingProtection != "" {
		pks := make([]phase0.BLSPubKey, len(fresh))
		for i, it := range fresh {
			pks[i] = phase0.BLSPubKey(it.sk.PublicKey())
		}
		res, err := slashing.Import(ctx, km.cfg.Store, strings.NewReader(slashingProtection), slashing.ImportOptions{Pubkeys: pks})
		if err != nil {
			for _, it := range fresh {
				it.sk.Zero()
			}
			return nil, interchangeError(err)
		}
		km.cfg.Logger.Info("keymanager: slashing protection imported", "validators", res.Imported, "skipped", res.Skipped,
			"blocks", res.Blocks, "attestations", res.Attestations)
	}

	var activate []keystore.Key
	for _, it := range fresh {
		pk := it.sk.PublicKey()
		if err := km.cfg.Managed.Write(pk, it.raw, it.password); err != nil {
			it.sk.Zero()
			out[it.idx].Status, out[it.idx].Message = signer.ImportError, "cannot persist the keystore: "+err.Error()
			km.cfg.Logger.Error("keymanager: import failed", "pubkey", pk, "err", err)
			continue
		}
		if err := km.cfg.Store.SetEnabled(ctx, phase0.BLSPubKey(pk), true); err != nil {
			_ = km.cfg.Managed.Remove(pk)
			it.sk.Zero()
			out[it.idx].Status, out[it.idx].Message = signer.ImportError, "cannot enable the key in the slashing protection database: "+err.Error()
			km.cfg.Logger.Error("keymanager: import failed", "pubkey", pk, "err", err)
			continue
		}
		key := keystore.NewLocalKey(it.sk)
		it.sk = nil
		km.cfg.Managed.Remember(pk, keyset.ManagedKey{Key: key, Path: it.ks.Path})
		activate = append(activate, key)
		out[it.idx].Status = signer.ImportImported
	}
	km.cfg.Keys.Add(activate)
	for _, k := range activate {
		km.cfg.Logger.Info("keymanager: key imported", "pubkey", k.PublicKey())
	}
	return out, nil
}

// decrypt decrypts items on the configured number of workers, setting each item's sk or err.
// Cancellation: no decryption starts after ctx is done; then every secret built is zeroed and
// ctx.Err() is returned.
func (km *Manager) decrypt(ctx context.Context, items []*importItem) error {
	next := make(chan *importItem)
	var wg sync.WaitGroup
	for range min(km.cfg.Workers, len(items)) {
		wg.Go(func() {
			for it := range next {
				if ctx.Err() != nil {
					continue
				}
				it.sk, it.err = decryptItem(it)
			}
		})
	}
feed:
	for _, it := range items {
		select {
		case next <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		for _, it := range items {
			if it.sk != nil {
				it.sk.Zero()
				it.sk = nil
			}
		}
		return err
	}
	return nil
}

func decryptItem(it *importItem) (sk *keystore.SecretKey, err error) {
	defer func() {
		if r := recover(); r != nil {
			sk, err = nil, fmt.Errorf("internal error while decrypting: %v", r)
		}
	}()
	return it.ks.Decrypt(it.password)
}

// interchangeError classifies a slashing.Import failure: a bad document is the caller's problem.
func interchangeError(err error) error {
	if errors.Is(err, slashing.ErrInterchange) {
		return signer.Invalid("slashing_protection: %v", err)
	}
	return fmt.Errorf("slashing_protection import: %w", err)
}

// Delete deletes keys (keymanager API semantics) and returns one result per requested key plus
// the interchange document with the history of the keys reported deleted or not_active:
//   - deleted: the key was active and managed here; it no longer signs, is disabled in the
//     slashing database and its files are removed.
//   - not_active: the key was not active but the database holds history for it (for example a
//     key deleted before), or its files were still persisted here (they are removed and the key
//     disabled).
//   - not_found: neither active nor any history.
//   - error: the key is readonly, or it could not be disabled (it then stays active).
//
// A returned error (the history could not be exported) concerns the whole request; keys that
// were already disabled stay disabled, and repeating the request reports them not_active with
// their history.
func (km *Manager) Delete(ctx context.Context, pubkeys []keystore.PublicKey) (signer.DeleteResponse, error) {
	km.mu.Lock()
	defer km.mu.Unlock()
	ctx = context.WithoutCancel(ctx) // every step below changes state or reports it: finish

	results := make([]signer.DeleteResult, len(pubkeys))
	first := map[keystore.PublicKey]int{}
	active := map[keystore.PublicKey]keystore.Key{} // managed and active: to delete
	var orphans []keystore.PublicKey                // managed files, key not active
	for i, pk := range pubkeys {
		if _, dup := first[pk]; dup {
			continue
		}
		first[pk] = i
		key, loaded := km.cfg.Keys.Get(pk)
		switch {
		case loaded:
			if _, mine := km.owned(pk, key); !mine {
				results[i] = signer.DeleteResult{Status: signer.DeleteError, Message: "Unable to delete readonly key: " + pk.String() +
					" is loaded from an operator-managed key source (keystore directory, key config file, Vault or HSM), not imported through the keymanager API"}
				continue
			}
			active[pk] = key
		case km.cfg.Managed.Persisted(pk):
			orphans = append(orphans, pk)
		}
		// Otherwise the key is not active here: its history decides (not_active / not_found).
	}

	// (1) No new signature from this process.
	removed := km.cfg.Keys.RemoveIf(active)
	for pk := range active {
		if _, ok := removed[pk]; !ok {
			// Replaced by someone else in between (a reload): nothing was changed, say so.
			delete(active, pk)
			results[first[pk]] = signer.DeleteResult{Status: signer.DeleteError, Message: "the key was reloaded while it was being deleted; nothing was changed, retry"}
		}
	}

	// (2) Disabled in the database. A key that cannot be disabled is put back: it is still
	// usable elsewhere, so reporting it deleted would be a lie.
	var restore []keystore.Key
	for pk, key := range active {
		if err := km.cfg.Store.SetEnabled(ctx, phase0.BLSPubKey(pk), false); err != nil {
			restore = append(restore, key)
			delete(active, pk)
			results[first[pk]] = signer.DeleteResult{Status: signer.DeleteError,
				Message: "cannot disable the key in the slashing protection database, so it stays active: " + err.Error()}
			km.cfg.Logger.Error("keymanager: delete failed", "pubkey", pk, "err", err)
		}
	}
	km.cfg.Keys.Add(restore)
	orphanFailed := map[keystore.PublicKey]bool{}
	for _, pk := range orphans {
		if err := km.cfg.Store.SetEnabled(ctx, phase0.BLSPubKey(pk), false); err != nil {
			orphanFailed[pk] = true
			results[first[pk]] = signer.DeleteResult{Status: signer.DeleteError,
				Message: "cannot disable the key in the slashing protection database, its files are kept: " + err.Error()}
			km.cfg.Logger.Error("keymanager: delete failed", "pubkey", pk, "err", err)
		}
	}

	// (3) Files.
	fileErr := map[keystore.PublicKey]error{}
	for pk := range active {
		km.cfg.Managed.Forget(pk)
		if err := km.cfg.Managed.Remove(pk); err != nil {
			fileErr[pk] = err
		}
	}
	for _, pk := range orphans {
		if orphanFailed[pk] {
			continue
		}
		km.cfg.Managed.Forget(pk)
		if err := km.cfg.Managed.Remove(pk); err != nil {
			fileErr[pk] = err
		}
	}
	for pk, err := range fileErr {
		results[first[pk]] = signer.DeleteResult{Status: signer.DeleteError, Message: "the key no longer signs and is disabled in the slashing protection database, " +
			"but its keystore file could not be removed (it would be loaded again at the next start): " + err.Error()}
		km.cfg.Logger.Error("keymanager: delete incomplete", "pubkey", pk, "err", err)
	}

	// (4) History of everything not in error.
	var want []phase0.BLSPubKey
	for _, pk := range pubkeys {
		if i := first[pk]; results[i].Status != signer.DeleteError && !containsPK(want, pk) {
			want = append(want, phase0.BLSPubKey(pk))
		}
	}
	history := map[keystore.PublicKey]slashing.ValidatorHistory{}
	if len(want) > 0 {
		// Stores differ in whether a key with a row but no messages gets an entry; only messages
		// count as history.
		err := km.cfg.Store.ExportValidators(ctx, want, func(h slashing.ValidatorHistory) error {
			if len(h.SignedBlocks)+len(h.SignedAttestations) > 0 {
				history[keystore.PublicKey(h.Pubkey)] = h
			}
			return nil
		})
		if err != nil {
			return signer.DeleteResponse{}, fmt.Errorf("export slashing protection history: %w", err)
		}
	}
	isOrphan := map[keystore.PublicKey]bool{}
	for _, pk := range orphans {
		isOrphan[pk] = !orphanFailed[pk]
	}
	for pk, i := range first {
		if results[i].Status == signer.DeleteError {
			continue
		}
		_, known := history[pk]
		switch _, deleted := active[pk]; {
		case deleted:
			results[i].Status = signer.DeleteDeleted
			km.cfg.Logger.Info("keymanager: key deleted", "pubkey", pk)
		case known || isOrphan[pk]:
			results[i].Status = signer.DeleteNotActive
		default:
			results[i].Status = signer.DeleteNotFound
		}
	}
	// Repeats within the request: after the first occurrence deleted it, the key is not active.
	for i, pk := range pubkeys {
		if j := first[pk]; j != i {
			results[i] = results[j]
			if results[j].Status == signer.DeleteDeleted {
				results[i].Status = signer.DeleteNotActive
			}
		}
	}

	doc, err := km.interchange(ctx, pubkeys, results, history)
	if err != nil {
		return signer.DeleteResponse{}, err
	}
	return signer.DeleteResponse{Results: results, SlashingProtection: doc}, nil
}

func containsPK(list []phase0.BLSPubKey, pk keystore.PublicKey) bool {
	for _, p := range list {
		if p == phase0.BLSPubKey(pk) {
			return true
		}
	}
	return false
}

// interchange writes the history of the deleted and not_active keys (an empty entry for a
// deleted key without history), in request order.
func (km *Manager) interchange(ctx context.Context, pubkeys []keystore.PublicKey, results []signer.DeleteResult, history map[keystore.PublicKey]slashing.ValidatorHistory) ([]byte, error) {
	// Read after the export: any history found pinned the root before it was read.
	gvr, ok, err := km.cfg.Store.GenesisValidatorsRoot(ctx)
	if err != nil {
		return nil, fmt.Errorf("export slashing protection history: %w", err)
	}
	if !ok {
		return []byte(nullInterchange), nil
	}
	var buf bytes.Buffer
	enc, err := slashing.NewEncoder(&buf, slashing.Metadata{GenesisValidatorsRoot: gvr})
	if err != nil {
		return nil, err
	}
	written := map[keystore.PublicKey]bool{}
	for i, pk := range pubkeys {
		if s := results[i].Status; (s != signer.DeleteDeleted && s != signer.DeleteNotActive) || written[pk] {
			continue
		}
		written[pk] = true
		h, ok := history[pk]
		if !ok {
			h = slashing.ValidatorHistory{Pubkey: phase0.BLSPubKey(pk)}
		}
		if err := enc.Encode(h); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
