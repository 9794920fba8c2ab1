package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

// request is one unit of work for the writer goroutine: a sign request
// (block or att; batched with others) or an exclusive job that runs in its
// own transaction.
type request struct {
	ctx       context.Context
	block     *slashing.Block
	att       *slashing.Attestation
	exclusive func(ctx context.Context, tx *sql.Tx) error

	verdict error      // refusal or nil, set inside the transaction
	done    chan error // buffered(1): the final answer
}

// submit hands r to the writer and waits for its answer, the caller's
// context, or the store closing.
func (s *Store) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return unavailable("submit", errClosed)
	}
	r.done = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-s.closing:
		return unavailable("submit", errClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// The writer may still record the request; that is safe (a record
		// without a released signature), and the caller releases nothing.
		return ctx.Err()
	case <-s.writerDone:
		select {
		case err := <-r.done:
			return err
		default:
			return unavailable("submit", errClosed)
		}
	}
}

// writer is the single goroutine that writes to the database.
func (s *Store) writer() {
	defer close(s.writerDone)
	var next *request
	batch := make([]*request, 0, s.opts.MaxBatch)
	for {
		first := next
		next = nil
		if first == nil {
			select {
			case first = <-s.reqs:
			case <-s.closing:
				s.drain()
				return
			}
		}
		if first.exclusive != nil {
			s.runExclusive(first)
			continue
		}
		batch = append(batch[:0], first)
	collect:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				if r.exclusive != nil {
					next = r
					break collect
				}
				batch = append(batch, r)
			default:
				break collect
			}
		}
		s.runBatch(batch)
		clear(batch)
	}
}

// drain answers everything still queued once the store is closing.
func (s *Store) drain() {
	for {
		select {
		case r := <-s.reqs:
			r.done <- unavailable("submit", errClosed)
		default:
			return
		}
	}
}

func (s *Store) runExclusive(r *request) {
	if err := r.ctx.Err(); err != nil {
		r.done <- err
		return
	}
	err := func() error {
		tx, err := s.wdb.BeginTx(r.ctx, nil)
		if err != nil {
			return err
		}
		if err := r.exclusive(r.ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			s.noteWrite(err)
			return err
		}
		s.commits.Add(1)
		// Committed to the file we opened: make sure that is still the file at our path.
		err = s.checkFile()
		s.noteWrite(err)
		return err
	}()
	if err != nil && !errors.Is(err, slashing.ErrInterchange) && !errors.Is(err, slashing.ErrSlashable) {
		err = unavailable("write transaction", err)
	}
	r.done <- err
}

// runBatch commits a batch of sign requests in one transaction and answers
// each. If a statement of one request fails, that request is answered with
// ErrUnavailable and the others are run again in a new transaction, so one
// bad request cannot fail its neighbours; if the transaction itself cannot
// begin or commit (I/O error, lock timeout), every request gets
// ErrUnavailable at once.
func (s *Store) runBatch(batch []*request) {
	live := make([]*request, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // dropped before anything was recorded
			continue
		}
		live = append(live, r)
	}
	for len(live) > 0 {
		failed, err := s.signTx(live)
		if err == nil {
			// The records are committed to the file this store opened. If that file is no
			// longer the one at its path (deleted, replaced by a copy), they would be lost at
			// the next start: release nothing.
			err = s.checkFile()
			failed = -1
		}
		s.noteWrite(err)
		if err == nil {
			for _, r := range live {
				r.done <- r.verdict
			}
			return
		}
		if failed < 0 {
			for _, r := range live {
				r.done <- unavailable("sign transaction", err)
			}
			return
		}
		live[failed].done <- unavailable("sign transaction", err)
		live = append(live[:failed:failed], live[failed+1:]...)
	}
}

// txState is what a sign transaction knows beyond the database.
type txState struct {
	tx       *sql.Tx
	gvr      *phase0.Root // pinned root as seen in this transaction
	high     *slashing.HighWatermark
	recorded uint64
}

// signTx runs reqs in one write transaction, setting each verdict. On a
// database error it rolls back and returns the error with the index of the
// request whose statement failed, or -1 if the transaction as a whole failed.
func (s *Store) signTx(reqs []*request) (failed int, err error) {
	// The transaction is not tied to any one caller's context: a caller that
	// gives up must not abort its neighbours' records.
	ctx := context.Background()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return -1, err
	}
	st := &txState{tx: tx, gvr: s.gvr.Load()}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if st.gvr == nil {
		var b []byte
		switch err := tx.StmtContext(ctx, s.st.getGVR).QueryRowContext(ctx).Scan(&b); {
		case err == sql.ErrNoRows:
		case err != nil:
			return -1, err
		default:
			st.gvr = column.RootFrom(b)
		}
	}
	if st.high, err = readHighWatermark(ctx, tx); err != nil {
		return -1, err
	}
	for i, r := range reqs {
		var v error
		if r.block != nil {
			v = s.signBlock(ctx, st, *r.block)
		} else {
			v = s.signAttestation(ctx, st, *r.att)
		}
		if v != nil && !errors.Is(v, slashing.ErrSlashable) {
			return i, v
		}
		r.verdict = v
	}
	if err := tx.Commit(); err != nil {
		return -1, err
	}
	if st.gvr != nil {
		s.gvr.CompareAndSwap(nil, st.gvr)
	}
	s.commits.Add(1)
	s.signRequests.Add(uint64(len(reqs)))
	s.recorded.Add(st.recorded)
	return -1, nil
}

// validator returns the key's id and enabled flag, registering an unknown key
// (enabled).
func (s *Store) validator(ctx context.Context, tx *sql.Tx, pk phase0.BLSPubKey) (int64, bool, error) {
	id, enabled, _, found, err := s.validatorFacts(ctx, tx, pk)
	if err != nil || found {
		return id, enabled, err
	}
	res, err := tx.StmtContext(ctx, s.st.addValidator).ExecContext(ctx, pk[:])
	if err != nil {
		return 0, false, err
	}
	id, err = res.LastInsertId()
	return id, true, err
}

func (s *Store) validatorFacts(ctx context.Context, tx *sql.Tx, pk phase0.BLSPubKey) (id int64, enabled bool, lw slashing.LowWatermarks, found bool, err error) {
	var slot, src, tgt sql.NullInt64
	err = tx.StmtContext(ctx, s.st.getValidator).QueryRowContext(ctx, pk[:]).Scan(&id, &enabled, &slot, &src, &tgt)
	if err == sql.ErrNoRows {
		return 0, false, lw, false, nil
	}
	if err != nil {
		return 0, false, lw, false, err
	}
	return id, enabled, watermarks(slot, src, tgt), true, nil
}

// registered returns the key's id, flag and watermarks, registering it if new.
func (s *Store) registered(ctx context.Context, tx *sql.Tx, pk phase0.BLSPubKey) (int64, bool, slashing.LowWatermarks, error) {
	id, enabled, lw, found, err := s.validatorFacts(ctx, tx, pk)
	if err != nil || found {
		return id, enabled, lw, err
	}
	id, enabled, err = s.validator(ctx, tx, pk)
	return id, enabled, lw, err
}

func (s *Store) pin(ctx context.Context, st *txState, gvr phase0.Root) error {
	if st.gvr != nil {
		return nil
	}
	if _, err := st.tx.StmtContext(ctx, s.st.pinGVR).ExecContext(ctx, gvr[:]); err != nil {
		return err
	}
	r := gvr
	st.gvr = &r
	return nil
}

func (s *Store) signBlock(ctx context.Context, st *txState, b slashing.Block) error {
	if err := slashing.CheckGenesisValidatorsRoot(st.gvr, b.GenesisValidatorsRoot); err != nil {
		return err
	}
	tx := st.tx
	id, enabled, lw, err := s.registered(ctx, tx, b.Pubkey)
	if err != nil {
		return err
	}
	f := slashing.BlockFacts{Enabled: enabled, LowWatermark: lw.Slot}
	if st.high != nil {
		f.High = &st.high.Slot
	}
	var root []byte
	switch err := tx.StmtContext(ctx, s.st.blockAt).QueryRowContext(ctx, id, column.Enc(uint64(b.Slot))).Scan(&root); {
	case err == sql.ErrNoRows:
	case err != nil:
		return err
	default:
		f.Existing = &slashing.SignedBlock{Slot: b.Slot, SigningRoot: column.RootFrom(root)}
	}
	v, refusal := slashing.CheckBlock(b, f)
	if refusal != nil || v == slashing.Repeat {
		return refusal
	}
	if err := s.pin(ctx, st, b.GenesisValidatorsRoot); err != nil {
		return err
	}
	if _, err := tx.StmtContext(ctx, s.st.insertBlock).ExecContext(ctx, id, column.Enc(uint64(b.Slot)), b.SigningRoot[:]); err != nil {
		return err
	}
	if lw.Slot == nil {
		if _, err := tx.StmtContext(ctx, s.st.setBlockLW).ExecContext(ctx, id, column.Enc(uint64(b.Slot))); err != nil {
			return err
		}
	}
	st.recorded++
	return nil
}

func (s *Store) signAttestation(ctx context.Context, st *txState, a slashing.Attestation) error {
	if err := slashing.CheckGenesisValidatorsRoot(st.gvr, a.GenesisValidatorsRoot); err != nil {
		return err
	}
	tx := st.tx
	id, enabled, lw, err := s.registered(ctx, tx, a.Pubkey)
	if err != nil {
		return err
	}
	f := slashing.AttestationFacts{Enabled: enabled, LowWatermark: lw.Attestation}
	if st.high != nil {
		f.High = &st.high.Epoch
	}
	src, tgt := column.Enc(uint64(a.SourceEpoch)), column.Enc(uint64(a.TargetEpoch))
	if err := s.attestationFacts(ctx, tx, id, src, tgt, &f); err != nil {
		return err
	}
	v, refusal := slashing.CheckAttestation(a, f)
	if refusal != nil || v == slashing.Repeat {
		return refusal
	}
	if err := s.pin(ctx, st, a.GenesisValidatorsRoot); err != nil {
		return err
	}
	if _, err := tx.StmtContext(ctx, s.st.insertAtt).ExecContext(ctx, id, tgt, src, a.SigningRoot[:]); err != nil {
		return err
	}
	if lw.Attestation == nil {
		if _, err := tx.StmtContext(ctx, s.st.setAttLW).ExecContext(ctx, id, src, tgt); err != nil {
			return err
		}
	}
	st.recorded++
	return nil
}

// attestationFacts fills f's recorded votes at the target, surrounding and surrounded (qAttFacts).
func (s *Store) attestationFacts(ctx context.Context, tx *sql.Tx, id, src, tgt int64, f *slashing.AttestationFacts) error {
	rows, err := tx.StmtContext(ctx, s.st.attFacts).QueryContext(ctx, id, src, tgt)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var kind, vs, vt int64
		var root []byte
		if err := rows.Scan(&kind, &vs, &vt, &root); err != nil {
			return err
		}
		v := &slashing.SignedAttestation{SourceEpoch: phase0.Epoch(column.Dec(vs)), TargetEpoch: phase0.Epoch(column.Dec(vt))}
		switch kind {
		case 0:
			v.SigningRoot = column.RootFrom(root)
			f.SameTarget = v
		case 1:
			f.Surrounding = v
		case 2:
			f.Surrounded = v
		default:
			return fmt.Errorf("attestation facts: unknown row kind %d", kind)
		}
	}
	return rows.Err()
}
