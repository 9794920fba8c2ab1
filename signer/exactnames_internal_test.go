package signer

import (
	"testing"

	"github.com/vigil-signer/vigil/internal/strictjson"
)

const strictBenchBody = `{"type":"ATTESTATION","fork_info":{"fork":{"previous_version":"0x00000001","current_version":"0x01000001","epoch":"0"},"genesis_validators_root":"0x05d79a31a8e69ecd78114c50ce73116be33027d8431b82fff6c0b3cd9c2cbb1f"},"attestation":{"slot":"80","index":"0","beacon_block_root":"0x000000000000000000000000000000000000000000000000000000000000000a","source":{"epoch":"9","root":"0x0000000000000000000000000000000000000000000000000000000000000009"},"target":{"epoch":"10","root":"0x000000000000000000000000000000000000000000000000000000000000000a"}}}`

// BenchmarkStrictCheckAttestation is the exact-name check alone on an ATTESTATION body; compare
// with BenchmarkDecodeAttestation (which includes it) in the same run.
func BenchmarkStrictCheckAttestation(b *testing.B) {
	body := []byte(strictBenchBody)
	b.ReportAllocs()
	for b.Loop() {
		if err := strictjson.Check(body, requestSchema); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStrictCheckAttestationAllocatesNothing(t *testing.T) {
	body := []byte(strictBenchBody)
	if n := testing.AllocsPerRun(100, func() {
		if err := strictjson.Check(body, requestSchema); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per request, want 0", n)
	}
}
