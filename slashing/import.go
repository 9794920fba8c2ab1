package slashing

import (
	"context"
	"fmt"
	"io"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// DefaultImportChunk is the default largest number of messages (blocks plus
// attestations) of one entry that Import reads and merges at once.
const DefaultImportChunk = 4096

// ImportOptions tunes Import.
type ImportOptions struct {
	// GenesisValidatorsRoot, when set, is the root of the network this node
	// runs on: a document for another network is refused even when the
	// database has no root pinned yet.
	GenesisValidatorsRoot *phase0.Root
	// Pubkeys, when non-nil, limits the import to these keys (the keymanager
	// API imports only the keys it is importing); other entries are skipped.
	// A non-nil empty slice imports nothing.
	Pubkeys []phase0.BLSPubKey
	// Progress, when set, is called after each entry is imported or skipped (from one goroutine).
	Progress func(ImportProgress)
	// Workers > 1 imports that many entries at once (for a store with real concurrency such
	// as Postgres): entries of the same pubkey still go in document order, through one worker.
	// On an error, entries after the failing one may already be imported too; that is as safe
	// as the sequential case (an import only adds history) and importing again is idempotent.
	Workers int
	// ChunkSize is the largest number of messages of one entry read and merged in one
	// transaction (default DefaultImportChunk). A larger entry is merged in several, its key
	// refused from the first to the last (see "Chunked imports" in import_chunked.go).
	ChunkSize int
	// AfterChunk, when set, is called after each chunk of a multi-chunk entry is committed
	// and before the next one is read (sequential imports only; a test hook).
	AfterChunk ImportHook
}

// ImportProgress reports how far an import got.
type ImportProgress struct {
	Entries    int   // entries of "data" read so far
	Imported   int   // entries imported so far
	Skipped    int   // entries skipped by the pubkey filter so far
	BytesRead  int64 // bytes of the document consumed so far
	LastPubkey phase0.BLSPubKey
}

// ImportResult summarises an import. On error it counts what was imported
// before the error (those validators are committed).
type ImportResult struct {
	GenesisValidatorsRoot phase0.Root
	Entries               int // entries read from "data"
	Imported              int // entries imported (one transaction each)
	Skipped               int // entries skipped by the pubkey filter
	Blocks                int // block records in the imported entries
	Attestations          int // attestation records in the imported entries
}

// Import reads an interchange document from r and merges it into store, one
// validator entry per transaction (store.ImportValidator). The genesis
// validators root is checked before anything is imported: a document whose
// root differs from opts.GenesisValidatorsRoot or from the root pinned in the
// store is refused whole (ErrInterchange).
//
// Entries are validated as they are read. If entry N is malformed (or the
// store fails), the import stops there and returns the error; entries before
// N stay imported. That is safe: an import only ever adds history and so only
// adds refusals, and importing the corrected document again is idempotent.
// The same pubkey may appear in several entries; each is merged in turn.
// The genesis validators root is pinned by the first imported entry: a
// document without entries (or with every entry filtered out) pins nothing.
func Import(ctx context.Context, store Store, r io.Reader, opts ImportOptions) (ImportResult, error) {
	var res ImportResult
	cr := &countingReader{r: r}
	dec := NewDecoder(cr)
	meta, err := dec.Metadata()
	if err != nil {
		return res, err
	}
	res.GenesisValidatorsRoot = meta.GenesisValidatorsRoot
	if want := opts.GenesisValidatorsRoot; want != nil && *want != meta.GenesisValidatorsRoot {
		return res, &InterchangeError{Index: -1, Field: "metadata.genesis_validators_root",
			Problem: fmt.Sprintf("%#x is not this network's genesis validators root %#x", meta.GenesisValidatorsRoot[:], want[:])}
	}
	pinned, ok, err := store.GenesisValidatorsRoot(ctx)
	if err != nil {
		return res, err
	}
	if ok && pinned != meta.GenesisValidatorsRoot {
		return res, &InterchangeError{Index: -1, Field: "metadata.genesis_validators_root",
			Problem: fmt.Sprintf("%#x does not match the database's genesis validators root %#x", meta.GenesisValidatorsRoot[:], pinned[:])}
	}
	var filter map[phase0.BLSPubKey]struct{}
	if opts.Pubkeys != nil {
		filter = make(map[phase0.BLSPubKey]struct{}, len(opts.Pubkeys))
		for _, pk := range opts.Pubkeys {
			filter[pk] = struct{}{}
		}
	}
	if opts.Workers > 1 {
		return importParallel(ctx, store, dec, cr, meta.GenesisValidatorsRoot, filter, opts, res)
	}
	ci := chunker{store: store, gvr: meta.GenesisValidatorsRoot}
	var want bool
	chunks := 0
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		c, err := dec.NextChunk(opts.ChunkSize)
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		if c.First {
			res.Entries++
			_, want = filter[c.Pubkey]
			want = want || filter == nil
			chunks = 0
		}
		if want {
			if err := ci.put(ctx, &c.ImportChunk); err != nil {
				return res, fmt.Errorf("importing data[%d] (pubkey %#x): %w", c.Index, c.Pubkey[:], err)
			}
			chunks++
			res.Blocks += len(c.SignedBlocks)
			res.Attestations += len(c.SignedAttestations)
			if opts.AfterChunk != nil && !(c.First && c.Last) {
				opts.AfterChunk(ctx, c.Pubkey, chunks, c.Last)
			}
		}
		if !c.Last {
			continue
		}
		if want {
			res.Imported++
		} else {
			res.Skipped++
		}
		if opts.Progress != nil {
			opts.Progress(ImportProgress{Entries: res.Entries, Imported: res.Imported, Skipped: res.Skipped,
				BytesRead: cr.n, LastPubkey: c.Pubkey})
		}
	}
}

// chunker merges an entry's chunks into a store: through ChunkImporter when
// the store has it, else by assembling the entry for one ImportValidator.
type chunker struct {
	store Store
	gvr   phase0.Root
	id    uint64
	whole ValidatorHistory // assembled entry (stores without ChunkImporter)
}

func (k *chunker) put(ctx context.Context, c *ImportChunk) error {
	if c.First {
		k.id = NewImportID()
		k.whole = ValidatorHistory{Pubkey: c.Pubkey}
	}
	c.ImportID = k.id
	if c.First && c.Last { // a one-chunk entry: the Store contract's one transaction
		return k.store.ImportValidator(ctx, k.gvr, ValidatorHistory{Pubkey: c.Pubkey,
			SignedBlocks: nonNil(c.SignedBlocks), SignedAttestations: nonNil(c.SignedAttestations)})
	}
	if ci, ok := k.store.(ChunkImporter); ok {
		return ci.ImportChunk(ctx, k.gvr, *c)
	}
	k.whole.SignedBlocks = append(k.whole.SignedBlocks, c.SignedBlocks...)
	k.whole.SignedAttestations = append(k.whole.SignedAttestations, c.SignedAttestations...)
	if !c.Last {
		return nil
	}
	h := k.whole
	k.whole = ValidatorHistory{}
	h.SignedBlocks, h.SignedAttestations = nonNil(h.SignedBlocks), nonNil(h.SignedAttestations)
	return k.store.ImportValidator(ctx, k.gvr, h)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
