#!/usr/bin/env bash
# The dependency rule of DESIGN §1, checked with `go list -deps` (make lint, and so make test/CI):
#   signer, api, failover never reach the Vault SDK or pgx (adapters live in keystore/vault,
#   slashing/postgres, failover/<store>; cmd wires them in);
#   signer never reaches net/http (the domain core is transport-free; its metrics adapter
#   signer/signermetrics may);
#   api never imports keystore itself (it talks to the signer only).
# Usage: deploy/dev/check-deps.sh [package dir...] (default: ./signer ./api ./failover)
set -uo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
fail=0
check() { # check <pkg> <regexp of forbidden import paths> <why> [direct]
  local pkg=$1 re=$2 why=$3 bad
  [ -d "$pkg" ] || return 0 # a package that does not exist yet (failover) has nothing to break
  if [ "${4:-}" = direct ]; then # the package's own imports (not its dependencies')
    bad=$($GO list -f '{{join .Imports "\n"}}' "$pkg/..." 2>/dev/null | grep -E "$re" | sort -u)
  elif [ "${4:-}" = self ]; then # the package itself, not its subpackages (adapters such as signermetrics)
    bad=$($GO list -deps "$pkg" 2>/dev/null | grep -E "$re")
  else
    bad=$($GO list -deps "$pkg/..." 2>/dev/null | grep -E "$re")
  fi
  if [ -n "$bad" ]; then
    echo "check-deps: $pkg reaches $(echo $bad | tr '\n' ' ')— $why" >&2
    for b in $bad; do
      echo "  via: $($GO list -deps -f '{{.ImportPath}}: {{join .Imports " "}}' "$pkg/..." | grep -E " $b( |$)" | cut -d: -f1 | head -3 | tr '\n' ' ')" >&2
    done
    fail=1
  fi
}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./signer ./api ./failover)
for p in "${pkgs[@]}"; do
  if [ "$p" = ./failover ]; then
    # failover's Postgres side is its store subpackage (failover/pgelect, an adapter like
    # slashing/postgres); every other failover package stays free of it.
    for q in $($GO list ./failover/... 2>/dev/null | grep -v '/failover/pgelect$' | sed 's|^github.com/vigil-signer/vigil/|./|'); do
      check "$q" '^github\.com/hashicorp/vault/|^github\.com/jackc/pgx' "only adapters and cmd may import the Vault SDK or pgx (DESIGN §1)" self
    done
    continue
  fi
  check "$p" '^github\.com/hashicorp/vault/|^github\.com/jackc/pgx' "only adapters and cmd may import the Vault SDK or pgx (DESIGN §1)"
  case $p in
    ./signer) check "$p" '^net/http$' "the signer core never imports net/http (DESIGN §1)" self ;;
    ./api) check "$p" '^github\.com/vigil-signer/vigil/keystore' "api may import signer only (DESIGN §1)" direct ;;
  esac
done
exit $fail
