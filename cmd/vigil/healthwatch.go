package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/vigil-signer/vigil/signer"
)

// healthInterval is how often the signer checks its own health without being asked.
const healthInterval = 5 * time.Second

// watchHealth checks the slashing store every interval (the "health tick": a database file
// deleted or replaced, a disk that stopped taking writes) and logs every change of state, so an
// operator learns of it even when no one polls /healthcheck. It returns when ctx ends.
func watchHealth(ctx context.Context, sg *signer.Signer, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var down string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h := sg.Health(ctx, 2*time.Second)
		switch {
		case h.Store != nil && h.Store.Error() != down:
			down = h.Store.Error()
			log.Error("slashing protection database DOWN: nothing is signed until it recovers", "err", h.Store)
		case h.Store == nil && down != "":
			down = ""
			log.Info("slashing protection database UP again")
		}
	}
}
