package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"
)

type recorder struct {
	name string
	log  *[]string
	fail error
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Start(context.Context) error {
	*r.log = append(*r.log, "start "+r.name)
	return r.fail
}
func (r *recorder) Stop() { *r.log = append(*r.log, "stop "+r.name) }

// Services start in order and stop in reverse; a failed start stops what had started, in
// reverse, and nothing after it starts.
func TestLifecycleOrder(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	var got []string
	lc := &lifecycle{log: quiet}
	a, b, c := &recorder{"store", &got, nil}, &recorder{"keys", &got, nil}, &recorder{"listener", &got, nil}
	if err := lc.start(t.Context(), a, b, c); err != nil {
		t.Fatal(err)
	}
	lc.stop()
	lc.stop() // twice is safe: nothing left to stop
	want := []string{"start store", "start keys", "start listener", "stop listener", "stop keys", "stop store"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}

	got = nil
	boom := errors.New("boom")
	lc = &lifecycle{log: quiet}
	err := lc.start(t.Context(), &recorder{"store", &got, nil}, &recorder{"keys", &got, boom}, &recorder{"listener", &got, nil})
	if !errors.Is(err, boom) {
		t.Fatalf("start error %v", err)
	}
	want = []string{"start store", "start keys", "stop store"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after a failed start: %v, want %v", got, want)
	}
}

// A loop service's context ends at Stop, not with Start's context, and Stop waits for it.
func TestLoopStopsAtStopAndJoins(t *testing.T) {
	ran, ended := make(chan struct{}), make(chan struct{})
	l := &loop{name: "x", run: func(ctx context.Context) {
		close(ran)
		<-ctx.Done()
		close(ended)
	}}
	ctx, cancel := context.WithCancel(t.Context())
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-ran
	cancel() // the caller's context ending does not stop the loop: the lifecycle does
	select {
	case <-ended:
		t.Fatal("the loop ended with its start context")
	default:
	}
	l.Stop()
	select {
	case <-ended:
	default:
		t.Fatal("Stop returned before the loop ended")
	}
	l.Stop()
}

// On Stop a listener refuses new connections at once and lets the in-flight request finish
// within the grace; a request still running after the grace is cut.
func TestHTTPServiceDrains(t *testing.T) {
	for _, tc := range []struct {
		name     string
		grace    time.Duration
		finishes bool
	}{{"finishes within the grace", time.Minute, true}, {"cut after the grace", 50 * time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			h := &httpService{name: "test listener", grace: tc.grace, log: slog.New(slog.DiscardHandler), failed: make(chan error, 1),
				listen: func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
				srv: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					close(entered)
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
					_, _ = io.WriteString(w, "done")
				})}}
			if err := h.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			addr := h.ln.Addr().String()
			type result struct {
				body string
				err  error
			}
			res := make(chan result, 1)
			go func() {
				resp, err := http.Get("http://" + addr + "/")
				if err != nil {
					res <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				res <- result{string(b), err}
			}()
			<-entered
			stopped := make(chan struct{})
			go func() { h.Stop(); close(stopped) }()
			// Not ready: new connections are refused once Stop has begun.
			for {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					break
				}
				c.Close()
				select {
				case <-stopped:
					t.Fatal("Stop returned while a request was in flight")
				default:
				}
			}
			if tc.finishes {
				close(release)
				if r := <-res; r.err != nil || r.body != "done" {
					t.Fatalf("in-flight request: %q %v", r.body, r.err)
				}
			} else if r := <-res; r.err == nil {
				t.Fatalf("a request running past the grace was not cut: %q", r.body)
			}
			<-stopped
			h.Stop()
		})
	}
}
