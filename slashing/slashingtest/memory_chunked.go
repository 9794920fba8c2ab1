package slashingtest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

type memImport struct {
	id         uint64
	wasEnabled bool
	touched    time.Time
}

// SetImportIdleTimeout sets how long after its last chunk an import still counts as running.
func (m *Memory) SetImportIdleTimeout(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.importIdle = &d
}

func (m *Memory) idleTimeout() time.Duration {
	if m.importIdle == nil {
		return slashing.DefaultImportIdleTimeout
	}
	return *m.importIdle
}

// checkRunning refuses the first chunk of import id while another import of pk is running.
func (m *Memory) checkRunning(pk phase0.BLSPubKey, id uint64) error {
	if mi := m.importing[pk]; mi != nil && mi.id != id {
		if idle := time.Since(mi.touched); idle < m.idleTimeout() {
			return fmt.Errorf("%w (pubkey %#x, its last chunk %s ago)", slashing.ErrImportInProgress, pk[:], idle.Round(time.Millisecond))
		}
	}
	return nil
}

// ImportMarkers lists the keys refused because of a chunked import, in pubkey order.
func (m *Memory) ImportMarkers(ctx context.Context) ([]slashing.ImportMarker, error) {
	if err := m.enter(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]slashing.ImportMarker, 0, len(m.importing))
	for pk, mi := range m.importing {
		idle := time.Since(mi.touched)
		out = append(out, slashing.ImportMarker{Pubkey: pk, Idle: idle, Interrupted: idle >= m.idleTimeout()})
	}
	slices.SortFunc(out, func(a, b slashing.ImportMarker) int { return bytes.Compare(a.Pubkey[:], b.Pubkey[:]) })
	return out, nil
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
	if c.First {
		if err := m.checkRunning(c.Pubkey, c.ImportID); err != nil {
			return err
		}
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
		mi.id, mi.touched = c.ImportID, time.Now()
		m.key(c.Pubkey).disabled = true
	case !c.First && (mi == nil || mi.id != c.ImportID):
		return fmt.Errorf("%w (pubkey %#x)", slashing.ErrImportConflict, c.Pubkey[:])
	case !c.First:
		mi.touched = time.Now()
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
