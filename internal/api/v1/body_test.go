package v1

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestLimitedBody: a body is cut at its limit, takes from the budget as it
// reads (or its Content-Length at once) and gives everything back.
func TestLimitedBody(t *testing.T) {
	v := &Server{budget: &bodyBudget{max: 3 << 20}}
	read := func(body []byte, limit int64, chunked bool) (*limitedBody, []byte, error) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		if chunked {
			r.ContentLength = -1
		}
		w := httptest.NewRecorder()
		b, ok := v.openBody(w, r, limit)
		if !ok {
			return nil, nil, errors.New(w.Body.String())
		}
		data, err := io.ReadAll(b)
		return b, data, err
	}
	for _, chunked := range []bool{false, true} {
		b, data, err := read(bytes.Repeat([]byte("x"), 2<<20), 2<<20, chunked)
		if err != nil || len(data) != 2<<20 {
			t.Fatalf("chunked %v: body at its limit: %d bytes, %v", chunked, len(data), err)
		}
		if v.budget.used < 2<<20 {
			t.Fatalf("chunked %v: %d bytes taken for 2 MiB read", chunked, v.budget.used)
		}
		// While it is held, 2 MiB more do not fit in 3 MiB.
		if _, _, err := read(bytes.Repeat([]byte("y"), 2<<20), 2<<20, chunked); err == nil || !errors.Is(err, errBusy) && !strings.Contains(err.Error(), "overloaded") {
			t.Fatalf("chunked %v: second body while the first is held: %v", chunked, err)
		}
		b.release()
		if v.budget.used != 0 {
			t.Fatalf("chunked %v: %d bytes still taken after release", chunked, v.budget.used)
		}
		_, _, err = read(bytes.Repeat([]byte("z"), 2<<20+1), 2<<20, chunked)
		var tl *tooLargeError
		if err == nil || !errors.As(err, &tl) && !strings.Contains(err.Error(), "too_large") {
			t.Fatalf("chunked %v: body over its limit: %v", chunked, err)
		}
	}
}

// TestBodyBudgetConcurrent: many requests at once never take more than the
// budget, and all of it comes back.
func TestBodyBudgetConcurrent(t *testing.T) {
	v := &Server{budget: &bodyBudget{max: 4 << 20}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := int64(0)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := httptest.NewRequest("POST", "/", bytes.NewReader(bytes.Repeat([]byte("x"), 1<<20+i)))
			if i%2 == 0 {
				r.ContentLength = -1
			}
			b, ok := v.openBody(httptest.NewRecorder(), r, 2<<20)
			if !ok {
				return
			}
			io.ReadAll(b)
			v.budget.mu.Lock()
			mu.Lock()
			peak = max(peak, v.budget.used)
			mu.Unlock()
			v.budget.mu.Unlock()
			b.release()
		}(i)
	}
	wg.Wait()
	if v.budget.used != 0 || peak > 4<<20 {
		t.Fatalf("used %d after all, peak %d of %d", v.budget.used, peak, 4<<20)
	}
}
