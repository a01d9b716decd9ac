package v1

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/strictjson"
)

// Request bodies are bounded twice: each request by its own limit (413
// too_large), and all /v1 requests together by a byte budget for bodies
// being read or processed (503 overloaded with Retry-After). A request
// takes from the budget as it reads (all of its Content-Length at once,
// before reading, when the client sends one) and gives it back when its
// answer is written; what a handler keeps while it works (decoded items,
// built messages) is proportional to what it read, so the budget bounds
// the server's memory for requests whatever their number.

// bodyBudget is the byte budget shared by all requests of one Server.
type bodyBudget struct {
	mu        sync.Mutex
	used, max int64
}

func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// errBusy: the budget is spent; the client should retry later.
var errBusy = errors.New("the server is handling too much request data; retry later")

// tooLargeError: the body is over its request's limit.
type tooLargeError struct{ limit int64 }

func (e *tooLargeError) Error() string { return fmt.Sprintf("request body over %d bytes", e.limit) }

// retryAfter is the Retry-After of an overloaded answer, in seconds.
const retryAfter = "2"

// bodyStep is how much a body without Content-Length takes from the budget
// at a time.
const bodyStep = 1 << 20

// limitedBody reads a request body of at most limit bytes, taking from
// the budget what it reads.
type limitedBody struct {
	r           io.Reader
	budget      *bodyBudget
	limit, held int64
	read        int64
	err         error
}

// openBody starts reading r's body under limit and the budget, or answers
// 413/503 and returns false. The caller must release the body when done.
func (v *Server) openBody(w http.ResponseWriter, r *http.Request, limit int64) (*limitedBody, bool) {
	b := &limitedBody{r: r.Body, budget: v.budget, limit: limit}
	if n := r.ContentLength; n >= 0 {
		if n > limit {
			bodyError(w, &tooLargeError{limit})
			return nil, false
		}
		// The server ends the body at Content-Length: no more is taken.
		b.limit = n
		if !v.budget.take(n + 1) {
			bodyError(w, errBusy)
			return nil, false
		}
		b.held = n + 1
	}
	return b, true
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	if room := b.limit + 1 - b.read; int64(len(p)) > room { // one byte over the limit shows an oversize body
		p = p[:room]
	}
	if need := b.read + int64(len(p)) - b.held; need > 0 {
		step := min(max(need, bodyStep), b.limit+1-b.held)
		if !b.budget.take(step) {
			b.err = errBusy
			return 0, b.err
		}
		b.held += step
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	if b.read > b.limit {
		b.err = &tooLargeError{b.limit}
		return 0, b.err
	}
	return n, err
}

// release gives the body's bytes back to the budget.
func (b *limitedBody) release() {
	b.budget.give(b.held)
	b.held = 0
}

// bodyError answers a failure to read a body: too large, overloaded, or
// unreadable. It returns false when err is none of these.
func bodyError(w http.ResponseWriter, err error) bool {
	var tl *tooLargeError
	switch {
	case errors.As(err, &tl):
		apiError(w, http.StatusRequestEntityTooLarge, "too_large", tl.Error(), "")
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", retryAfter)
		apiError(w, http.StatusServiceUnavailable, "overloaded", err.Error(), "")
	default:
		return false
	}
	return true
}

// readBody reads a JSON body of at most limit bytes into dst with the one
// strict decoder (no unknown fields, no duplicate keys, one value) and
// returns the raw bytes (for idempotency hashing) and the release of its
// budget, which the caller defers.
func (v *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64, dst any) ([]byte, func(), bool) {
	body, ok := v.openBody(w, r, limit)
	if !ok {
		return nil, nil, false
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		if !bodyError(w, err) {
			apiError(w, http.StatusBadRequest, "bad_request", "cannot read request body", "")
		}
		body.release()
		return nil, nil, false
	}
	if err := strictjson.Decode(raw, dst); err != nil {
		jsonError(w, err, "")
		body.release()
		return nil, nil, false
	}
	return raw, body.release, true
}

// readSmall is readBody for a small body whose decoded value is all the
// handler keeps: the budget is given back at once.
func (v *Server) readSmall(w http.ResponseWriter, r *http.Request, limit int64, dst any) bool {
	_, release, ok := v.readBody(w, r, limit, dst)
	if ok {
		release()
	}
	return ok
}

// jsonError answers a decoding error; a duplicate key names its field.
func jsonError(w http.ResponseWriter, err error, prefix string) {
	d := jsonErrorDetail(err, prefix)
	apiError(w, http.StatusBadRequest, d.Code, d.Message, d.Field)
}

func jsonErrorDetail(err error, prefix string) *api.APIErrorDetail {
	d := &api.APIErrorDetail{Code: "invalid_json", Message: err.Error(), Field: prefix}
	var dup *strictjson.DuplicateKeyError
	if errors.As(err, &dup) {
		d.Field = joinField(joinField(prefix, dup.Path), dup.Key)
	}
	return d
}

func joinField(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case b[0] == '[':
		return a + b
	}
	return a + "." + b
}
