package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

// Verdict codes of the database functions (see functions.sql).
const (
	verdictRecord      = 0
	verdictRepeat      = 1
	verdictFenced      = 2
	verdictGVR         = 3
	verdictDisabled    = 4
	verdictSourceAfter = 5
	verdictBelowLW     = 6
	verdictDouble      = 7
	verdictSurrounded  = 8
	verdictSurrounding = 9
	verdictAboveHW     = 10
)

type verdict struct {
	code   int16
	x1, x2 *int64
	xroot  []byte
}

// SignBlock checks b against the key's history and records it: one call of
// vigil_sign_block, one round trip, one transaction.
func (s *Store) SignBlock(ctx context.Context, b slashing.Block) error {
	if err := s.enter(ctx, "sign block"); err != nil {
		return err
	}
	term := s.term.Load()
	var v verdict
	if err := s.writeRow(ctx, "sign block", stmtSignBlock, []any{term, b.Pubkey[:], column.Enc(uint64(b.Slot)), b.SigningRoot[:], b.GenesisValidatorsRoot[:]},
		&v.code, &v.x1, &v.x2, &v.xroot); err != nil {
		return err
	}
	s.signs.Add(1)
	if v.code == verdictRecord {
		s.wrote()
	}
	return s.count(s.blockVerdict(b, term, v))
}

// SignAttestation checks a against the key's history and records it: one
// call of vigil_sign_attestation, one round trip, one transaction.
func (s *Store) SignAttestation(ctx context.Context, a slashing.Attestation) error {
	if err := s.enter(ctx, "sign attestation"); err != nil {
		return err
	}
	term := s.term.Load()
	var v verdict
	if err := s.writeRow(ctx, "sign attestation", stmtSignAtt, []any{term, a.Pubkey[:], column.Enc(uint64(a.SourceEpoch)), column.Enc(uint64(a.TargetEpoch)),
		a.SigningRoot[:], a.GenesisValidatorsRoot[:]}, &v.code, &v.x1, &v.x2, &v.xroot); err != nil {
		return err
	}
	s.signs.Add(1)
	if v.code == verdictRecord {
		s.wrote()
	}
	return s.count(s.attestationVerdict(a, term, v))
}

// ErrNotReplicated: the server committed a signature's record locally but cancelled its wait
// for synchronous replication (its WARNING "canceling wait for synchronous replication"), so no
// synchronous standby may have it and a failover could lose it. Nothing is released; the error
// matches slashing.ErrUnavailable. An identical repeat is a write transaction of its own whose
// commit waits for replication past the earlier record, so it is served only once a standby
// acknowledged it (or fails the same way).
var ErrNotReplicated = errors.New("the commit was not acknowledged by a synchronous standby (its replication wait was cancelled)")

// writeRow runs one write statement on a connection of its own and scans its row; a commit the
// server reported as not replicated (onNotice) fails it. One round trip, as pool.QueryRow.
func (s *Store) writeRow(ctx context.Context, op, sql string, args []any, dest ...any) error {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return unavailable(op, err)
	}
	defer c.Release()
	cc := counting(c.Conn())
	if cc != nil {
		cc.notReplicated.Store(false)
	}
	err = c.QueryRow(ctx, sql, args...).Scan(dest...)
	if cc != nil && cc.notReplicated.Swap(false) && err == nil {
		err = ErrNotReplicated
	}
	if err != nil && writeFailure(err) {
		s.writeOK.Store(&writeState{err: err})
	}
	if err != nil {
		return unavailable(op, err)
	}
	return nil
}

// Writability for Ping: a write that failed because the server cannot write (read-only, disk
// full, I/O error, not replicated) is recorded in writeOK (writeRow, ImportChunk), and health
// stays DOWN until a write that recorded something commits (wrote: verdict 0; a refusal, a
// repeat or a fenced write commits nothing and proves nothing) or Ping's own probe write does.
// Other errors (a lost connection, a cancelled request) say nothing about writability.

// wrote clears a recorded write failure after a write that recorded something committed.
func (s *Store) wrote() {
	if p := s.writeOK.Load(); p != nil {
		s.writeOK.CompareAndSwap(p, nil)
	}
}

// probeWrite is Ping's write while a write failure is recorded: a real write transaction (a new
// row version of schema_version, flushed and, under synchronous replication, acknowledged), so
// that health recovers even when nothing is sent to a DOWN instance (a load balancer routes on
// /readyz). Its outcome replaces the recorded state.
func (s *Store) probeWrite(ctx context.Context) {
	var v int
	err := s.writeRow(ctx, "probe write", `UPDATE schema_version SET version = version WHERE id = 1 RETURNING version`, nil, &v)
	if err == nil {
		s.wrote()
	}
}

// writeFailure: SQLSTATE class 25 (read-only transaction: a hot standby, default_transaction_read_only),
// 53 (insufficient resources: disk full, out of memory), 58 (I/O error), or a commit not replicated.
func writeFailure(err error) bool {
	if errors.Is(err, ErrNotReplicated) {
		return true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "25", "53", "58":
		return true
	}
	return false
}

func (s *Store) count(err error) error {
	switch {
	case err == nil:
	case errors.Is(err, ErrFenced):
		s.fencedN.Add(1)
	case errors.Is(err, slashing.ErrSlashable):
		s.refused.Add(1)
	}
	return err
}

// blockVerdict turns the database's verdict into the store's answer. The
// refusal itself is built by slashing.CheckBlock from the facts the database
// reported, so its reason and wording are those of every other store; should
// the Go rules disagree with the database's reason (they must not), the
// database's reason wins (it is what was committed).
func (s *Store) blockVerdict(b slashing.Block, term int64, v verdict) error {
	switch v.code {
	case verdictRecord:
		s.recorded.Add(1)
		s.noteGVR(b.GenesisValidatorsRoot)
		return nil
	case verdictRepeat:
		return nil
	case verdictFenced:
		return fenced("sign block", term, deref(v.x1))
	case verdictGVR:
		return gvrRefusal(v.xroot, b.GenesisValidatorsRoot)
	}
	f := slashing.BlockFacts{Enabled: true}
	var want slashing.Reason
	switch v.code {
	case verdictDisabled:
		f.Enabled, want = false, slashing.ValidatorDisabled
	case verdictAboveHW:
		hw := phase0.Slot(column.Dec(deref(v.x1)))
		f.High, want = &hw, slashing.AboveHighWatermark
	case verdictBelowLW:
		lw := phase0.Slot(column.Dec(deref(v.x1)))
		f.LowWatermark, want = &lw, slashing.BelowLowWatermark
	case verdictDouble:
		f.Existing, want = &slashing.SignedBlock{Slot: b.Slot, SigningRoot: column.RootFrom(v.xroot)}, slashing.DoubleProposal
	default:
		return fmt.Errorf("%w: postgres: sign block: unknown verdict %d", slashing.ErrUnavailable, v.code)
	}
	_, err := slashing.CheckBlock(b, f)
	return refusal(err, want, v.code)
}

func (s *Store) attestationVerdict(a slashing.Attestation, term int64, v verdict) error {
	switch v.code {
	case verdictRecord:
		s.recorded.Add(1)
		s.noteGVR(a.GenesisValidatorsRoot)
		return nil
	case verdictRepeat:
		return nil
	case verdictFenced:
		return fenced("sign attestation", term, deref(v.x1))
	case verdictGVR:
		return gvrRefusal(v.xroot, a.GenesisValidatorsRoot)
	}
	f := slashing.AttestationFacts{Enabled: true}
	var want slashing.Reason
	vote := func() *slashing.SignedAttestation {
		return &slashing.SignedAttestation{SourceEpoch: phase0.Epoch(column.Dec(deref(v.x1))), TargetEpoch: phase0.Epoch(column.Dec(deref(v.x2)))}
	}
	switch v.code {
	case verdictDisabled:
		f.Enabled, want = false, slashing.ValidatorDisabled
	case verdictSourceAfter:
		want = slashing.SourceAfterTarget
	case verdictAboveHW:
		hw := phase0.Epoch(column.Dec(deref(v.x1)))
		f.High, want = &hw, slashing.AboveHighWatermark
	case verdictBelowLW:
		f.LowWatermark = &slashing.AttestationWatermark{Source: phase0.Epoch(column.Dec(deref(v.x1))), Target: phase0.Epoch(column.Dec(deref(v.x2)))}
		want = slashing.BelowLowWatermark
	case verdictDouble:
		f.SameTarget = &slashing.SignedAttestation{SourceEpoch: phase0.Epoch(column.Dec(deref(v.x1))), TargetEpoch: a.TargetEpoch, SigningRoot: column.RootFrom(v.xroot)}
		want = slashing.DoubleVote
	case verdictSurrounded:
		f.Surrounding, want = vote(), slashing.SurroundedVote
	case verdictSurrounding:
		f.Surrounded, want = vote(), slashing.SurroundingVote
	default:
		return fmt.Errorf("%w: postgres: sign attestation: unknown verdict %d", slashing.ErrUnavailable, v.code)
	}
	_, err := slashing.CheckAttestation(a, f)
	return refusal(err, want, v.code)
}

func refusal(err error, want slashing.Reason, code int16) error {
	var r *slashing.Refusal
	if errors.As(err, &r) && r.Reason == want {
		return err
	}
	return slashing.Refuse(want, "refused by the database (verdict %d; the Go rules say %v)", code, err)
}

func gvrRefusal(pinned []byte, requested phase0.Root) error {
	p := column.RootFrom(pinned)
	if err := slashing.CheckGenesisValidatorsRoot(p, requested); err != nil {
		return err
	}
	return slashing.Refuse(slashing.GenesisRootMismatch, "refused by the database (pinned root %x)", pinned)
}

func (s *Store) noteGVR(r phase0.Root) {
	if s.gvr.Load() == nil {
		s.gvr.CompareAndSwap(nil, &r)
	}
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
