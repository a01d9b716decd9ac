package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/queue"
)

// DestinationPauser is the scheduler's manual pause (queue.Scheduler).
// Pauses live in the scheduler's memory: a restart clears them.
type DestinationPauser interface {
	PauseDestination(key string, until time.Time, by string) (queue.ManualPause, error)
	ResumeDestination(key, by string) bool
}

// PauseRequest is the body of POST /admin/v1/destinations/{key}/pause
// (and /resume, which reads only By).
type PauseRequest struct {
	For string `json:"for,omitempty"` // a Go duration ("1h"); empty: until resumed
	By  string `json:"by,omitempty"`  // who pauses, for the events and why
}

// PauseResult answers pause and resume.
type PauseResult struct {
	Destination string             `json:"destination"`
	Paused      bool               `json:"paused"`
	Pause       *queue.ManualPause `json:"pause,omitempty"`
	Message     string             `json:"message"`
}

// PauseUntil parses a pause's duration ("" until resumed) into its end.
func PauseUntil(d string, now time.Time) (time.Time, error) {
	if strings.TrimSpace(d) == "" {
		return time.Time{}, nil
	}
	dur, err := time.ParseDuration(strings.TrimSpace(d))
	if err != nil || dur <= 0 {
		return time.Time{}, &BadRequest{Msg: fmt.Sprintf("pause duration %q: want a positive duration such as 30m or 2h", d)}
	}
	return now.Add(dur), nil
}
