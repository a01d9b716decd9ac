package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode: Decode never panics, accepts only what encoding/json accepts
// (with the same result), and refuses duplicates only in valid JSON.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"text":"a"}`, `{"text":"a","text":"b"}`, `{"to":[{"email":"a"},{"EMAIL":"b","email":"c"}]}`,
		`{"headers":{"a":"1","A":"2"}}`, `{"extra":{"x":[{"y":1,"y":2}]}}`, `{"raw":{"k":1,"K":2}}`, `[]`, `{"a":`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var strict request
		err := Decode(data, &strict)
		var de *DuplicateKeyError
		if errors.As(err, &de) && !json.Valid(data) {
			t.Fatalf("duplicate key reported in invalid JSON %q", data)
		}
		if err != nil {
			return
		}
		var loose request
		if err := json.Unmarshal(data, &loose); err != nil {
			t.Fatalf("strict accepts %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(strict, loose) {
			t.Fatalf("%q: strict %+v, encoding/json %+v", data, strict, loose)
		}
		var anyv any
		if err := Decode(data, &anyv); err != nil {
			t.Fatalf("%q decodes into a struct but not into any: %v", data, err)
		}
	})
}
