package v1

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/strictjson"
)

// FuzzReadBulk: the streaming bulk decoder agrees with decoding the whole
// body: what it accepts encoding/json accepts with the same items, and
// what the strict one-shot decoder accepts it accepts too.
func FuzzReadBulk(f *testing.F) {
	for _, s := range []string{`{"messages":[{"a":1},{"b":[2]}]}`, `{"messages":null}`, `{"Messages":[]}`, `{"messages":[],"messages":[]}`,
		`{"messages":[1,2,3]} x`, `{"other":1}`, `[]`, `{"messages":[{"a":1,"a":2}]}`, ` { "messages" : [ "x" ] } `} {
		f.Add([]byte(s))
	}
	v := &Server{MaxBulk: 100}
	f.Fuzz(func(t *testing.T, data []byte) {
		var items [][]byte
		err := v.readBulk(json.NewDecoder(bytes.NewReader(data)), func(i int, raw []byte) {
			if i != len(items) {
				t.Fatalf("item %d out of order", i)
			}
			items = append(items, append([]byte(nil), raw...))
		})
		var whole api.BulkRequest
		if err == nil {
			if e := json.Unmarshal(data, &whole); e != nil {
				t.Fatalf("stream accepts %q, encoding/json refuses it: %v", data, e)
			}
			if len(whole.Messages) != len(items) {
				t.Fatalf("%q: %d items streamed, %d decoded", data, len(items), len(whole.Messages))
			}
			for i := range items {
				var a, b bytes.Buffer
				json.Compact(&a, items[i])
				json.Compact(&b, whole.Messages[i])
				if !bytes.Equal(a.Bytes(), b.Bytes()) {
					t.Fatalf("%q: item %d streamed %q, decoded %q", data, i, items[i], whole.Messages[i])
				}
			}
			return
		}
		if strictjson.Decode(data, &whole) == nil && len(whole.Messages) <= v.MaxBulk {
			t.Fatalf("strict decoding accepts %q, the stream refuses it: %v", data, err)
		}
	})
}
