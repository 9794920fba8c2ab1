package slashing

import (
	"context"
	"fmt"
	"io"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Export writes the history of pubkeys (all keys with history when nil) as an
// interchange document, with the genesis validators root pinned in the
// store. A store with no root pinned has no history; Export then returns
// ErrNoGenesisValidatorsRoot and writes nothing (Web3Signer's CLI refuses
// likewise) — writing a made-up root would produce a document that pins the
// wrong network wherever it is imported. Use ExportWithRoot when the
// network's root is known.
func Export(ctx context.Context, store Store, w io.Writer, pubkeys []phase0.BLSPubKey) error {
	gvr, ok, err := store.GenesisValidatorsRoot(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNoGenesisValidatorsRoot
	}
	return export(ctx, store, w, gvr, pubkeys)
}

// ExportWithRoot is Export for a caller that knows the network's genesis
// validators root (the keymanager API): the document carries gvr even when
// the store has none pinned (and then simply has no entries with history).
// A store pinned to another root is an error.
func ExportWithRoot(ctx context.Context, store Store, w io.Writer, gvr phase0.Root, pubkeys []phase0.BLSPubKey) error {
	pinned, ok, err := store.GenesisValidatorsRoot(ctx)
	if err != nil {
		return err
	}
	if ok && pinned != gvr {
		return fmt.Errorf("%w: export for genesis validators root %#x requested, the database is pinned to %#x", ErrInterchange, gvr[:], pinned[:])
	}
	return export(ctx, store, w, gvr, pubkeys)
}

func export(ctx context.Context, store Store, w io.Writer, gvr phase0.Root, pubkeys []phase0.BLSPubKey) error {
	enc, err := NewEncoder(w, Metadata{InterchangeFormatVersion: InterchangeFormatVersion, GenesisValidatorsRoot: gvr})
	if err != nil {
		return err
	}
	if err := store.ExportValidators(ctx, pubkeys, enc.Encode); err != nil {
		return err
	}
	return enc.Close()
}
