package main

import "flag"

// registerWeb3SignerAliases registers Web3Signer's flag names as aliases of Vigil's.
func registerWeb3SignerAliases(fs *flag.FlagSet, c *serveConfig) {}
