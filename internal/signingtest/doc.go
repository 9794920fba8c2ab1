// Package signingtest holds fixtures for tests only: the consensus spec's signing-root
// computation (compute_domain, compute_signing_root, the mainnet fork schedule) and builders of
// beacon objects and Web3Signer sign-request bodies.
//
// It is the independent check of the signer: roots are computed here from go-eth2-client's
// generated (static, mainnet-sized, fastssz) HashTreeRoot methods and the spec's formulas, never
// by calling github.com/vigil-signer/vigil/signer. Keep it that way: a test that compares the
// signer's root with one computed through the signer proves nothing.
//
// Builders are deterministic: the same arguments give the same bytes, so a test can repeat a
// request (an identical re-sign) or vary one seed to make a conflicting one.
//
// Production code must not import this package.
package signingtest
