// Package strictjson checks a JSON document for the two things encoding/json
// lets through silently and a case-sensitive reader sees differently:
//
//   - a member name that appears twice in one object (encoding/json keeps the
//     last value, some readers keep the first, jq and Python the last, a
//     streaming decoder may act on both), and
//   - a member name that equals a known field name only case-insensitively
//     ("TARGET" for "target", "ſlot" for "slot": encoding/json matches both,
//     using Unicode case folding, whereas a proxy or an audit log reading the
//     same bytes does not).
//
// Known names come from a Schema: a tree of the field names of the types the
// document is decoded into (Object, Array, Union, or Of a Go type, which
// derives the tree from the type's own JSON encoding). Names that are not
// known and are not case variants of a known name are left alone (they are
// ignored by the decoders, as Web3Signer ignores them); duplicates are
// refused in every object, known or not.
//
// Check is one pass over the raw bytes, before (or instead of) the decoder's
// own pass, and allocates nothing unless it finds a problem (or meets an
// escaped member name, or an object of more than 24 members). It does not
// validate JSON syntax: on malformed input it may return nil and leave the
// syntax error to the decoder that follows it, which every caller runs.
// For valid JSON its answer is exact.
//
// Every JSON decoder of the project goes through this package (the signing
// request, the interchange reader, the keymanager API bodies and EIP-2335
// keystores); each wraps an *Error in its own bad-input sentinel.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// Problem kinds, for errors.Is.
var (
	// ErrDuplicate: a member name appears twice in one object.
	ErrDuplicate = errors.New("duplicate field name")
	// ErrCase: a member name differs from a known field name only by case.
	ErrCase = errors.New("field names are case-sensitive")
)

// Error is a problem found by Check. errors.Is(err, ErrDuplicate) or
// errors.Is(err, ErrCase) tells which kind.
type Error struct {
	// Path is the offending member's path, e.g. "fork_info.FORK" or
	// "signed_blocks[2].slot" (member names as written, sanitised).
	Path string
	// Want is the exact known name, for ErrCase.
	Want string
	// Kind is ErrDuplicate or ErrCase.
	Kind error
}

func (e *Error) Error() string { return e.Path + ": " + e.Problem() }

// Problem is the message without the path (for callers whose errors carry
// the path in a field of their own).
func (e *Error) Problem() string {
	if e.Kind == ErrCase {
		return fmt.Sprintf("%v, want %q", e.Kind, e.Want)
	}
	return fmt.Sprintf("%v (a name may appear once per object)", e.Kind)
}

// Is makes errors.Is(e, e.Kind) true.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Schema is the tree of known field names of a JSON value. A nil *Schema
// knows no names (only duplicates are checked below it). A Schema is
// immutable once built and safe for concurrent use.
type Schema struct {
	fields map[string]*Schema // exact name → schema of its value
	fold   map[string]string  // ASCII lower-case name → exact name
	names  []string
	maxLen int
	elem   *Schema // schema of array elements
}

// Object is the schema of an object with the given known members (a nil
// value: a member whose insides have no known names).
func Object(fields map[string]*Schema) *Schema {
	s := &Schema{}
	for name, child := range fields {
		s.add(name, child)
	}
	return s
}

// Array is the schema of an array whose elements have schema elem.
func Array(elem *Schema) *Schema { return &Schema{elem: elem} }

// Union is a schema that knows every name any of ss knows (a value decoded
// into one of several shapes).
func Union(ss ...*Schema) *Schema {
	out := &Schema{}
	for _, s := range ss {
		out.merge(s)
	}
	return out
}

// With returns a copy of s that also knows the given members.
func (s *Schema) With(fields map[string]*Schema) *Schema {
	return Union(s, Object(fields))
}

// Field returns the schema of member name (nil if unknown).
func (s *Schema) Field(name string) *Schema {
	if s == nil {
		return nil
	}
	return s.fields[name]
}

// Names returns the known member names (unordered).
func (s *Schema) Names() []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s.names...)
}

func (s *Schema) add(name string, child *Schema) {
	if s.fields == nil {
		s.fields = make(map[string]*Schema)
		s.fold = make(map[string]string)
	}
	if old, ok := s.fields[name]; ok {
		if child != nil {
			if old == nil {
				old = &Schema{}
			}
			s.fields[name] = Union(old, child)
		}
		return
	}
	s.fields[name] = child
	s.names = append(s.names, name)
	s.maxLen = max(s.maxLen, len(name))
	if low, ok := asciiLower(name); ok {
		if prev, dup := s.fold[low]; dup && prev != name {
			panic(fmt.Sprintf("strictjson: known names %q and %q differ only by case", prev, name))
		}
		s.fold[low] = name
	}
}

func (s *Schema) merge(o *Schema) {
	if o == nil {
		return
	}
	for _, name := range o.names {
		s.add(name, o.fields[name])
	}
	if o.elem != nil {
		if s.elem == nil {
			s.elem = &Schema{}
		}
		s.elem.merge(o.elem)
	}
}

func asciiLower(name string) (string, bool) {
	b := []byte(name)
	for i, c := range b {
		if c >= utf8.RuneSelf {
			return "", false
		}
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b), true
}

// Of derives the schema of the JSON encoding of type T from the encoding
// itself: a value of T with every pointer, slice (one element), string and
// number populated is marshalled (through the type's own MarshalJSON where
// it has one), and every object member name of the result is known, at its
// path. It panics if the type cannot be marshalled; use it at package init.
func Of[T any]() *Schema {
	var v T
	rv := reflect.ValueOf(&v).Elem()
	populate(rv, 0)
	b, err := json.Marshal(rv.Addr().Interface()) // pointer: MarshalJSON has pointer receivers
	if err != nil {
		panic(fmt.Sprintf("strictjson.Of[%s]: %v", rv.Type(), err))
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		panic(fmt.Sprintf("strictjson.Of[%s]: %v", rv.Type(), err))
	}
	return fromTree(tree)
}

func fromTree(v any) *Schema {
	switch t := v.(type) {
	case map[string]any:
		s := &Schema{}
		for name, child := range t {
			s.add(name, fromTree(child))
		}
		if s.fields == nil {
			s.fields, s.fold = map[string]*Schema{}, map[string]string{}
		}
		return s
	case []any:
		var elems []*Schema
		for _, e := range t {
			elems = append(elems, fromTree(e))
		}
		return Array(Union(elems...))
	}
	return nil
}

func populate(v reflect.Value, depth int) {
	if depth > 12 || !v.CanSet() {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		populate(v.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				populate(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Type() != reflect.TypeOf(json.RawMessage(nil)) {
				v.Set(reflect.ValueOf(make([]byte, 1)).Convert(v.Type()))
			}
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		populate(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			populate(v.Index(i), depth+1)
		}
	case reflect.String:
		v.SetString("1")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	}
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

// Check reports the first duplicate member name, or member name that is a
// case variant of a name s knows, in the JSON value data (see the package
// doc). A nil s checks duplicates only.
func Check(data []byte, s *Schema) error {
	c := checker{b: data}
	i := skipWS(data, 0)
	if i >= len(data) {
		return nil
	}
	_, err := c.value(i, s, 0)
	return err
}

// CheckMember checks one member name of an object whose schema is s (for a
// streaming reader that sees names one at a time): it reports a case variant
// of a known name. path is the object's path ("" at the top).
func CheckMember(s *Schema, path, name string) error {
	if s == nil {
		return nil
	}
	if _, ok := s.fields[name]; ok {
		return nil
	}
	if want, ok := s.foldLookup([]byte(name)); ok {
		return &Error{Path: join(path, name), Want: want, Kind: ErrCase}
	}
	return nil
}

// Duplicate is the error of a streaming reader that met name twice in the
// object at path.
func Duplicate(path, name string) error {
	return &Error{Path: join(path, name), Kind: ErrDuplicate}
}

func join(path, name string) string {
	name = printable(name)
	if path == "" {
		return name
	}
	return path + "." + name
}

// printable shortens and sanitises a member name for an error message.
func printable(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s && s != "" && !bytes.ContainsAny([]byte(s), ".[] ") {
		return s
	}
	return q
}

func (s *Schema) foldLookup(name []byte) (string, bool) {
	if s == nil || len(s.names) == 0 {
		return "", false
	}
	ascii := true
	for _, c := range name {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		if len(name) > s.maxLen {
			return "", false
		}
		var buf [64]byte
		low := buf[:0]
		if len(name) > len(buf) {
			low = make([]byte, 0, len(name))
		}
		for _, c := range name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			low = append(low, c)
		}
		want, ok := s.fold[string(low)]
		return want, ok
	}
	// Unicode folding (encoding/json matches "ſlot" to "slot", "K" to "k").
	for _, want := range s.names {
		if bytes.EqualFold(name, []byte(want)) {
			return want, true
		}
	}
	return "", false
}

type checker struct {
	b []byte
}

// prefix puts seg (a member name or an "[index]") in front of e's path.
func prefix(e *Error, seg string) *Error {
	if e.Path == "" || e.Path[0] == '[' {
		e.Path = seg + e.Path
	} else {
		e.Path = seg + "." + e.Path
	}
	return e
}

// value checks the value starting at b[i] (not whitespace) and returns the
// index just past it; -1 for malformed input (nothing more is checked).
func (c *checker) value(i int, s *Schema, depth int) (int, error) {
	if depth > maxDepth {
		return -1, nil // the decoder refuses it (encoding/json has the same limit)
	}
	b := c.b
	switch b[i] {
	case '{':
		return c.object(i, s, depth)
	case '[':
		var elem *Schema
		if s != nil {
			elem = s.elem
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for n := 0; i < len(b); n++ {
			end, err := c.value(i, elem, depth+1)
			if err != nil {
				var e *Error
				if errors.As(err, &e) {
					return -1, prefix(e, "["+strconv.Itoa(n)+"]")
				}
				return -1, err
			}
			if end < 0 {
				return -1, nil
			}
			i = skipWS(b, end)
			if i >= len(b) {
				return -1, nil
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return -1, nil
			}
			i = skipWS(b, i+1)
		}
		return -1, nil
	case '"':
		end, _ := skipString(b, i)
		return end, nil
	default:
		for i < len(b) && !isDelim(b[i]) {
			i++
		}
		return i, nil
	}
}

const inlineMembers = 24

func (c *checker) object(i int, s *Schema, depth int) (int, error) {
	b := c.b
	var inline [inlineMembers][]byte
	var many map[string]struct{} // once the object has more than inlineMembers members
	seen := inline[:0]
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return -1, nil
		}
		end, escaped := skipString(b, i)
		if end < 0 {
			return -1, nil
		}
		name := b[i+1 : end-1]
		if escaped {
			var str string
			if json.Unmarshal(b[i:end], &str) != nil {
				return -1, nil
			}
			name = []byte(str)
		}
		// Small objects (every real request) scan a stack array; a large one moves to a map so
		// an object of many members costs linear, not quadratic, time.
		if many != nil {
			if _, dup := many[string(name)]; dup {
				return -1, &Error{Path: printable(string(name)), Kind: ErrDuplicate}
			}
			many[string(name)] = struct{}{}
		} else {
			for _, prev := range seen {
				if bytes.Equal(prev, name) {
					return -1, &Error{Path: printable(string(name)), Kind: ErrDuplicate}
				}
			}
			seen = append(seen, name)
			if len(seen) > inlineMembers {
				many = make(map[string]struct{}, 2*len(seen))
				for _, n := range seen {
					many[string(n)] = struct{}{}
				}
			}
		}
		var child *Schema
		if s != nil {
			var ok bool
			if child, ok = s.fields[string(name)]; !ok {
				if want, bad := s.foldLookup(name); bad {
					return -1, &Error{Path: printable(string(name)), Want: want, Kind: ErrCase}
				}
			}
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return -1, nil
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return -1, nil
		}
		vend, err := c.value(i, child, depth+1)
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				return -1, prefix(e, printable(string(name)))
			}
			return -1, err
		}
		if vend < 0 {
			return -1, nil
		}
		i = skipWS(b, vend)
		if i >= len(b) {
			return -1, nil
		}
		if b[i] == '}' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return -1, nil
		}
		i = skipWS(b, i+1)
	}
	return -1, nil
}

// skipString returns the index just past the string starting at b[i] and
// whether it has escapes; -1 if it is not terminated.
func skipString(b []byte, i int) (int, bool) {
	escaped := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return -1, escaped
}

func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}
