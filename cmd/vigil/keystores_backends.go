package main

import (
	"context"

	"github.com/vigil-signer/vigil/keystore"
)

func (f *keyStoreFlags) openVault(ctx context.Context, getenv func(string) string) (keystore.Store, func(), error) {
	return nil, nil, usagef("vault: not wired yet")
}

func (f *keyStoreFlags) openHSM(ctx context.Context, create bool, getenv func(string) string) (keystore.Store, func(), error) {
	return nil, nil, usagef("hsm: not wired yet")
}
