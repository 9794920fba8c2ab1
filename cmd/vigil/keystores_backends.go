package main

import (
	"context"
	"strings"

	"github.com/vigil-signer/vigil/hsm"
	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/vault"
)

func (f *keyStoreFlags) openVault(ctx context.Context, getenv func(string) string) (keystore.Store, func(), error) {
	if f.vaultAddr == "" {
		return nil, nil, usagef("vault: --vault-address is required")
	}
	cfg := vault.Config{
		Address: f.vaultAddr, Mount: f.vaultMount, Prefix: f.vaultPath, Field: f.vaultField,
		AppRoleMount: f.vaultAppRoleMount, Namespace: f.vaultNamespace, CAFile: f.vaultCAFile,
		Timeout: f.vaultTimeout, Logger: f.logger,
	}
	if f.vaultRoleIDFile != "" || f.vaultSecretIDFile != "" {
		if f.vaultRoleIDFile == "" || f.vaultSecretIDFile == "" {
			return nil, nil, usagef("vault: AppRole needs both --vault-approle-role-id-file and --vault-approle-secret-id-file")
		}
		role, err := secretFrom(f.vaultRoleIDFile, "", getenv, "vault AppRole role_id")
		if err != nil {
			return nil, nil, err
		}
		secret, err := secretFrom(f.vaultSecretIDFile, "", getenv, "vault AppRole secret_id")
		if err != nil {
			return nil, nil, err
		}
		cfg.RoleID, cfg.SecretID = strings.TrimSpace(string(role)), strings.TrimSpace(string(secret))
		clear(secret)
	} else {
		tok, err := secretFrom(f.vaultTokenFile, envVaultToken, getenv, "vault token")
		if err != nil {
			return nil, nil, err
		}
		cfg.Token = strings.TrimSpace(string(tok))
		clear(tok)
	}
	s, err := vault.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return s, func() { _ = s.Close() }, nil
}

func (f *keyStoreFlags) openHSM(ctx context.Context, create bool, getenv func(string) string) (keystore.Store, func(), error) {
	pin, err := hsm.ReadPIN(f.hsmPINFile, getenv)
	if err != nil {
		return nil, nil, err
	}
	s, err := hsm.Open(ctx, hsm.Config{
		ModulePath: f.hsmModule, TokenLabel: f.hsmToken, PIN: pin, KEKLabel: f.hsmKEKLabel,
		CreateKEK: create, Sessions: f.hsmSessions, Logger: f.logger,
	})
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// keyConfigLoaders are the key-config types read outside package keystore (--key-config-path):
// Web3Signer's hashicorp documents, by keystore/vault. Each call returns fresh loaders (one per
// key-config source: they cache their Vault clients).
func keyConfigLoaders() map[string]keystore.KeyConfigLoader {
	return map[string]keystore.KeyConfigLoader{keystore.KeyConfigHashicorp: vault.NewKeyConfigLoader()}
}
