package signer

import (
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// checkBitfields refuses bitfields of the wrong size. go-eth2-client's JSON decoders do not check
// bitvector lengths and the SSZ hasher zero-pads a short bitvector, so a truncated committee_bits,
// sync_committee_bits or contribution aggregation_bits would otherwise be signed as a different
// (padded) object than the one sent. An empty bitlist lacks its length bit and is not valid SSZ
// either (a zero last byte is already refused by the hasher).
func (n *Network) checkBitfields(r *Request) error {
	syncBits := n.syncCommitteeSize
	vector := func(field string, b []byte, bits uint64) error {
		if want := int((bits + 7) / 8); len(b) != want {
			return invalid("%s: want %d bytes (%d bits), got %d", field, want, bits, len(b))
		}
		return nil
	}
	list := func(field string, b []byte) error {
		if len(b) == 0 {
			return invalid("%s: a bitlist needs at least one byte (its length bit)", field)
		}
		return nil
	}
	var atts []*phase0.Attestation
	switch {
	case r.Block != nil && r.Block.Body != nil:
		atts = r.Block.Body.Attestations
	case r.AltairBlock != nil && r.AltairBlock.Body != nil:
		atts = r.AltairBlock.Body.Attestations
		if sa := r.AltairBlock.Body.SyncAggregate; sa != nil {
			if err := vector("sync_aggregate.sync_committee_bits", sa.SyncCommitteeBits, syncBits); err != nil {
				return err
			}
		}
	case r.Aggregate != nil && r.Aggregate.Aggregate != nil:
		atts = []*phase0.Attestation{r.Aggregate.Aggregate}
	case r.AggregateElectra != nil && r.AggregateElectra.Aggregate != nil:
		a := r.AggregateElectra.Aggregate
		if err := list("aggregate.aggregation_bits", a.AggregationBits); err != nil {
			return err
		}
		return vector("aggregate.committee_bits", a.CommitteeBits, n.maxCommitteesPerSlot)
	case r.Contribution != nil && r.Contribution.Contribution != nil:
		// SYNC_COMMITTEE_SIZE / SYNC_COMMITTEE_SUBNET_COUNT (4) bits.
		return vector("contribution.aggregation_bits", r.Contribution.Contribution.AggregationBits, syncBits/4)
	}
	for i, a := range atts {
		if a != nil {
			if err := list(fmt.Sprintf("attestations[%d].aggregation_bits", i), a.AggregationBits); err != nil {
				return err
			}
		}
	}
	return nil
}
