package slashing

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one embedded schema step of a store: migrations/NNNN_name.sql brings the schema
// from version NNNN-1 to NNNN.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// MustLoadMigrations reads every dir/NNNN_name.sql of fsys in version order and panics unless
// they are numbered 1..n without gaps (the files are embedded: a bad set is a build mistake).
func MustLoadMigrations(fsys fs.FS, dir string) []Migration {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		panic(err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			panic(fmt.Sprintf("bad migration file name %q", name))
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			panic(err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			panic(fmt.Sprintf("migrations are not numbered 1..n: %q", m.Name))
		}
	}
	return ms
}
