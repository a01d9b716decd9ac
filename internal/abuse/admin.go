package abuse

import (
	"context"
	"encoding/json"
	"net/http"
)

// ReleaseRequest is the body of POST /admin/v1/abuse/release.
type ReleaseRequest struct {
	User        string `json:"user,omitempty"`    // SMTP user name
	APIKey      string `json:"api_key,omitempty"` // API key ID
	ReleaseHeld bool   `json:"release_held,omitempty"`
}

// ReleaseResponse answers a release.
type ReleaseResponse struct {
	Principal string   `json:"principal"`
	Released  bool     `json:"released"` // the sender was flagged and is not any more
	Held      []string `json:"held_messages,omitempty"`
	// HeldReleased counts deliveries put back in the queue (release_held).
	HeldReleased int `json:"held_released"`
}

// QuotaRequest is the body of POST /admin/v1/abuse/quota: one sender's
// quotas (messages per hour and per day, 0: no limit). Fields left out
// keep their value; Clear goes back to the config file's quota.
type QuotaRequest struct {
	User   string `json:"user,omitempty"`
	APIKey string `json:"api_key,omitempty"`
	Hour   *int   `json:"hour,omitempty"`
	Day    *int   `json:"day,omitempty"`
	Clear  bool   `json:"clear,omitempty"`
}

// QuotaResponse is a sender's quota now.
type QuotaResponse struct {
	Principal string `json:"principal"`
	Hour      int    `json:"hour"`
	Day       int    `json:"day"`
}

// Status is the answer of GET /admin/v1/abuse.
type Status struct {
	Flagged []FlagStatus             `json:"flagged"`
	Quotas  map[string]QuotaResponse `json:"quotas"` // set by the operator
	Scan    any                      `json:"scan,omitempty"`
}

// Admin serves the operator's abuse endpoints on the admin socket.
type Admin struct {
	Guard *Guard
	// ReleaseMessages puts held messages back in the queue and returns
	// how many deliveries moved (queue release).
	ReleaseMessages func(ctx context.Context, ids []string) (int, error)
	ScanStats       func() any // nil: scanning is off
}

// Handler returns the routes under /admin/v1/abuse.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/abuse", func(w http.ResponseWriter, r *http.Request) {
		st := Status{Flagged: a.Guard.Flagged(), Quotas: map[string]QuotaResponse{}}
		for p, q := range a.Guard.Quotas() {
			st.Quotas[p] = QuotaResponse{p, q.PerHour, q.PerDay}
		}
		if st.Flagged == nil {
			st.Flagged = []FlagStatus{}
		}
		if a.ScanStats != nil {
			st.Scan = a.ScanStats()
		}
		reply(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /admin/v1/abuse/release", func(w http.ResponseWriter, r *http.Request) {
		var req ReleaseRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || (req.User == "") == (req.APIKey == "") {
			reply(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request", "message": "name a user or an api_key"}})
			return
		}
		p := "smtp:" + req.User
		if req.APIKey != "" {
			p = "apikey:" + req.APIKey
		}
		held, ok := a.Guard.Release(r.Context(), p)
		res := ReleaseResponse{Principal: p, Released: ok, Held: held}
		if req.ReleaseHeld && len(held) > 0 {
			n, err := a.ReleaseMessages(r.Context(), held)
			if err != nil {
				reply(w, http.StatusInternalServerError, map[string]any{"error": map[string]string{"code": "internal", "message": "releasing the held mail failed: " + err.Error()}})
				return
			}
			res.HeldReleased = n
		}
		reply(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST /admin/v1/abuse/quota", func(w http.ResponseWriter, r *http.Request) {
		var req QuotaRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || (req.User == "") == (req.APIKey == "") ||
			req.Hour != nil && *req.Hour < 0 || req.Day != nil && *req.Day < 0 {
			reply(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request",
				"message": "name a user or an api_key; hour and day are not negative"}})
			return
		}
		p := "smtp:" + req.User
		if req.APIKey != "" {
			p = "apikey:" + req.APIKey
		}
		var err error
		if req.Clear {
			err = a.Guard.SetQuota(p, nil)
		} else {
			q := a.Guard.QuotaOf(p)
			if req.Hour != nil {
				q.PerHour = *req.Hour
			}
			if req.Day != nil {
				q.PerDay = *req.Day
			}
			err = a.Guard.SetQuota(p, &q)
		}
		if err != nil {
			reply(w, http.StatusInternalServerError, map[string]any{"error": map[string]string{"code": "internal", "message": err.Error()}})
			return
		}
		q := a.Guard.QuotaOf(p)
		reply(w, http.StatusOK, QuotaResponse{p, q.PerHour, q.PerDay})
	})
	return mux
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
