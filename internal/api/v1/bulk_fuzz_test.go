package v1

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/strictjson"
)

// FuzzReadBulk: the streaming bulk decoder agrees with decoding the whole
// body: what it accepts encoding/json accepts with the same items, and
// what the strict one-shot decoder accepts it accepts too.
func FuzzReadBulk(f *testing.F) {
	for _, s := range []string{`{"messages":[{"a":1},{"b":[2]}]}`, `{"messages":[1,]}`, `{"messages":[],}`, `{"messages":[{"a":"]\\\"}"},"x",true,-1.5e3]}`, `{"messag\u0065s":[]}`, `null`, `nul`, `{"messages":[1 2]}`, "{\"messages\" :\n[ {\"a\":1} ,\n\t{\"b\":2} ] }", `{"messages":null}`, `{"Messages":[]}`, `{"messages":[],"messages":[]}`,
		`{"messages":[1,2,3]} x`, `{"other":1}`, `[]`, `{"messages":[{"a":1,"a":2}]}`, ` { "messages" : [ "x" ] } `} {
		f.Add([]byte(s))
	}
	v := &Server{MaxBulk: 100}
	f.Fuzz(func(t *testing.T, data []byte) {
		var items [][]byte
		var r io.Reader = bytes.NewReader(data)
		if len(data)%2 == 1 {
			r = iotest.OneByteReader(r) // items cut across reads
		}
		err := v.readBulk(r, func(i int, raw []byte) error {
			if i != len(items) {
				t.Fatalf("item %d out of order", i)
			}
			if !json.Valid(raw) { // what sendBulk does
				return errors.New("malformed JSON: invalid item")
			}
			items = append(items, append([]byte(nil), raw...))
			return nil
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
