// Package vault is the HashiCorp Vault key source: a keystore.Store over a KV version 2 engine
// (Store, opened with Open) and the loader of Web3Signer "hashicorp" key-config documents
// (KeyConfigLoader, which cmd/vigil registers in keystore.KeyConfig.Loaders).
//
// It is a package of its own so that the key-source contract (package keystore), and with it
// signer and api, depends on neither the Vault SDK nor net/http.
//
// Files, one concern each: store.go (the KV v2 store), secret.go (reading and decoding one
// secret), auth.go (token and AppRole authentication, renewal, re-login), errors.go (the error
// vocabulary: whole-source failures wrap keystore.ErrUnavailable with a reason an operator can
// act on), client.go (the HTTP/TLS client), config.go (Config and its validation), keyconfig.go
// (hashicorp key-config documents).
//
// The tests against a real (in-process) Vault live in the nested module keystore/vaulttest.
package vault
