package admin

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/store"
)

// The admin socket's queue why and queue summary; the answers are built
// by the queue operations (internal/queue/ops).

func (a *Server) why(w http.ResponseWriter, r *http.Request) {
	res, err := a.Ops.Why(r.Context(), "", r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

// parseStates reads a comma-separated list of pending states.
func parseStates(s string) ([]store.State, error) {
	var out []store.State
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		st := store.State(p)
		if !st.Valid() || st.Final() {
			return nil, &api.BadRequest{Msg: fmt.Sprintf("state %q: want pending states (scheduled, queued, sending, deferred, held)", p)}
		}
		out = append(out, st)
	}
	return out, nil
}

func (a *Server) summary(w http.ResponseWriter, r *http.Request) {
	states, err := parseStates(r.URL.Query().Get("state"))
	if err != nil {
		a.fail(w, err)
		return
	}
	res, err := a.Ops.Summary(r.Context(), states)
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}
