package slashingtest

import (
	"context"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

type memImport struct {
	id         uint64
	wasEnabled bool
}

// ImportChunk implements slashing.ChunkImporter (the reference semantics of
// a chunked import: see slashing's "Chunked imports").
func (m *Memory) ImportChunk(ctx context.Context, gvr phase0.Root, c slashing.ImportChunk) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.gvr != nil && *m.gvr != gvr {
		return fmt.Errorf("%w: genesis validators root %#x does not match the database's %#x", slashing.ErrInterchange, gvr[:], m.gvr[:])
	}
	mi := m.importing[c.Pubkey]
	switch {
	case c.First && !c.Last:
		if mi == nil {
			if m.importing == nil {
				m.importing = map[phase0.BLSPubKey]*memImport{}
			}
			mi = &memImport{wasEnabled: !m.key(c.Pubkey).disabled}
			m.importing[c.Pubkey] = mi
		}
		mi.id = c.ImportID
		m.key(c.Pubkey).disabled = true
	case !c.First && (mi == nil || mi.id != c.ImportID):
		return fmt.Errorf("%w (pubkey %#x)", slashing.ErrImportConflict, c.Pubkey[:])
	}
	m.pin(gvr)
	k := m.key(c.Pubkey)
	for _, b := range c.SignedBlocks {
		if e, ok := k.blocks[b.Slot]; ok {
			b = slashing.MergeBlock(e, b)
		}
		k.blocks[b.Slot] = b
	}
	for _, a := range c.SignedAttestations {
		if e, ok := k.atts[a.TargetEpoch]; ok {
			a = slashing.MergeAttestation(e, a)
		}
		k.atts[a.TargetEpoch] = a
	}
	if c.Last {
		if w := c.Watermarks.Slot; k.lw.Slot == nil && w != nil {
			v := *w
			k.lw.Slot = &v
		}
		if w := c.Watermarks.Attestation; k.lw.Attestation == nil && w != nil {
			v := *w
			k.lw.Attestation = &v
		}
		m.endImport(c.Pubkey, k)
	}
	return nil
}

// endImport removes pk's import marker, restoring the flag it recorded.
func (m *Memory) endImport(pk phase0.BLSPubKey, k *memKey) {
	if mi := m.importing[pk]; mi != nil {
		k.disabled = !mi.wasEnabled
		delete(m.importing, pk)
	}
}

// Importing reports whether pk has an import marker (an import in progress or interrupted).
func (m *Memory) Importing(pk phase0.BLSPubKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.importing[pk] != nil
}
