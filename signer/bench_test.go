package signer_test

import (
	"testing"

	"github.com/vigil-signer/vigil/signer"
)

const benchAttestation = `{"type":"ATTESTATION","fork_info":{"fork":{"previous_version":"0x00000001","current_version":"0x01000001","epoch":"0"},"genesis_validators_root":"0x05d79a31a8e69ecd78114c50ce73116be33027d8431b82fff6c0b3cd9c2cbb1f"},"attestation":{"slot":"80","index":"0","beacon_block_root":"0x000000000000000000000000000000000000000000000000000000000000000a","source":{"epoch":"9","root":"0x0000000000000000000000000000000000000000000000000000000000000009"},"target":{"epoch":"10","root":"0x000000000000000000000000000000000000000000000000000000000000000a"}}}`

// BenchmarkDecodeAttestation measures the per-request decoding cost of the most frequent request.
func BenchmarkDecodeAttestation(b *testing.B) {
	body := []byte(benchAttestation)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := signer.DecodeRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkComputeAttestation measures signing-root computation (domain + SSZ hashing).
func BenchmarkComputeAttestation(b *testing.B) {
	n, err := signer.LoadNetwork("minimal")
	if err != nil {
		b.Fatal(err)
	}
	r, err := signer.DecodeRequest([]byte(benchAttestation))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Compute(r); err != nil {
			b.Fatal(err)
		}
	}
}
