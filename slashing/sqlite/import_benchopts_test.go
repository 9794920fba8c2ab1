package sqlite_test

import "github.com/vigil-signer/vigil/slashing/sqlite"

var benchOpenOptions = sqlite.Options{Create: true}
