package signer

import "github.com/attestantio/go-eth2-client/spec/phase0"

// Subject is what a request is about, for logs and audits: the slot and epochs its payload
// carries. A field is nil when the type has none (a RANDAO reveal has an epoch but no slot; a
// deposit has neither). Nothing here needs the network: epochs are only those in the payload.
type Subject struct {
	Slot        *phase0.Slot
	Epoch       *phase0.Epoch // RANDAO_REVEAL, VOLUNTARY_EXIT epoch; ATTESTATION target epoch
	SourceEpoch *phase0.Epoch // ATTESTATION source epoch
}

// Subject returns the slot and epochs of the typed payload. It never fails: a request that
// DecodeRequest accepted has its payload set; anything else yields an empty Subject.
func (r *Request) Subject() Subject {
	var s Subject
	if r == nil {
		return s
	}
	slot := func(v phase0.Slot) { s.Slot = &v }
	epoch := func(v phase0.Epoch) { s.Epoch = &v }
	switch {
	case r.BlockHeader != nil:
		slot(r.BlockHeader.Slot)
	case r.AltairBlock != nil:
		slot(r.AltairBlock.Slot)
	case r.Block != nil:
		slot(r.Block.Slot)
	case r.Attestation != nil:
		slot(r.Attestation.Slot)
		if r.Attestation.Target != nil {
			epoch(r.Attestation.Target.Epoch)
		}
		if r.Attestation.Source != nil {
			v := r.Attestation.Source.Epoch
			s.SourceEpoch = &v
		}
	case r.Slot != nil:
		slot(*r.Slot)
	case r.Epoch != nil:
		epoch(*r.Epoch)
	case r.AggregateElectra != nil:
		if a := r.AggregateElectra.Aggregate; a != nil && a.Data != nil {
			slot(a.Data.Slot)
		}
	case r.Aggregate != nil:
		if a := r.Aggregate.Aggregate; a != nil && a.Data != nil {
			slot(a.Data.Slot)
		}
	case r.VoluntaryExit != nil:
		epoch(r.VoluntaryExit.Epoch)
	case r.SyncMessage != nil:
		slot(r.SyncMessage.Slot)
	case r.SyncSelection != nil:
		slot(r.SyncSelection.Slot)
	case r.Contribution != nil:
		if c := r.Contribution.Contribution; c != nil {
			slot(c.Slot)
		}
	}
	return s
}
