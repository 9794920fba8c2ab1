package keystore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keystoretest"
)

// BenchmarkKeystoreDecryptScaling decrypts standard scrypt keystores (n=2^18, r=8, p=1) with one
// worker and with GOMAXPROCS workers in the same run and reports the parallel rate over the
// one-core rate × cores (1.0 = perfect scaling). Run with -benchtime 1x.
func BenchmarkKeystoreDecryptScaling(b *testing.B) {
	cores := runtime.GOMAXPROCS(0)
	n := 4 * cores
	dir, pw := b.TempDir(), filepath.Join(b.TempDir(), "pw.txt")
	idx := make([]uint64, n)
	for i := range idx {
		idx[i] = uint64(i)
	}
	if _, err := keystore.WriteInteropKeystores(dir, pw, idx, keystore.StandardScrypt()); err != nil {
		b.Fatal(err)
	}
	load := func(workers int) time.Duration {
		src, err := keystore.NewDirSource(keystore.DirConfig{KeystoresPath: dir, PasswordFile: pw, Workers: workers})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		res, err := src.Load(context.Background())
		if err != nil || len(res.Keys) != n {
			b.Fatalf("load: %d keys, %v %v", len(res.Keys), res.Errors, err)
		}
		return time.Since(t0)
	}
	b.ResetTimer()
	var one, all time.Duration
	for range b.N {
		one += load(1)
		all += load(cores)
	}
	oneRate := float64(n*b.N) / one.Seconds()
	allRate := float64(n*b.N) / all.Seconds()
	b.ReportMetric(oneRate, "keystores/s-1core")
	b.ReportMetric(allRate, "keystores/s-all")
	b.ReportMetric(allRate/(oneRate*float64(cores)), "scaling")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkKeyringStartup10k loads a local keyring of 10,000 keys (standard scrypt once, then
// AES-GCM and a public-key derivation per key) and reports the seconds per load next to the time
// the same keys would take as standard keystores at the one-core scrypt rate × cores.
func BenchmarkKeyringStartup10k(b *testing.B) {
	const n = 10000
	dir := filepath.Join(b.TempDir(), "keyring")
	pw := []byte("bench")
	k, err := keystore.OpenKeyring(keystore.KeyringConfig{Dir: dir, Password: pw, Create: true})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := k.Put(context.Background(), keystoretest.Key(b, i)); err != nil {
			b.Fatal(fmt.Errorf("put %d: %w", i, err))
		}
	}
	k.Close()
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		t0 := time.Now()
		k, err := keystore.OpenKeyring(keystore.KeyringConfig{Dir: dir, Password: pw})
		if err != nil {
			b.Fatal(err)
		}
		res, err := k.Load(context.Background())
		if err != nil || len(res.Keys) != n {
			b.Fatalf("load: %d keys, %v", len(res.Keys), err)
		}
		total += time.Since(t0)
		k.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/startup")
	b.ReportMetric(0, "ns/op")
}
