package store

import "time"

// Node is one posthorn node of a cluster sharing a store (posthorn nodes).
type Node struct {
	Name      string    `json:"name"`
	Host      string    `json:"host,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Version   string    `json:"version,omitempty"`
	Started   time.Time `json:"started_at"`
	Heartbeat time.Time `json:"heartbeat_at"`
	Stopped   time.Time `json:"stopped_at,omitzero"`
	// Alive: its heartbeat is recent and it has not stopped.
	Alive bool `json:"alive"`
	// Leases is how many pending deliveries the node holds, Sending how
	// many of them it is sending now.
	Leases  int `json:"leases"`
	Sending int `json:"sending"`
}

// SharedThrottle is a cut of a destination's limits that one node made
// (a rate_limited reply) and every node applies.
type SharedThrottle struct {
	Destination   string
	Node          string
	Conns         int
	RatePerMinute float64 // 0: no rate
	PausedUntil   time.Time
	Reason        string
	UpdatedAt     time.Time
}
