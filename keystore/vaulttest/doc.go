// Package vaulttest holds the tests of Vigil's HashiCorp Vault key source (package keystore/vault:
// vault.Store and the Web3Signer "hashicorp" key-config documents) against a real Vault server
// running in the test process (package vaultcore), and the vaultdev command (cmd/vaultdev).
//
// It is a separate Go module (github.com/vigil-signer/vigil/keystore/vaulttest) because the Vault
// server's dependency graph is large: about 300 modules, ~5 minutes and ~3 GB of RAM for a cold
// build. The main module's `go test ./...` does not enter this directory; run it on its own:
//
//	cd keystore/vaulttest && go test ./...
//
// go.mod pins github.com/hashicorp/vault v1.21.4 with the replace
// github.com/hashicorp/vault/sdk => v0.20.0 (no published sdk matches v1.21.4's in-tree one) and
// uses the Vigil module from ../.. through a replace.
package vaulttest
