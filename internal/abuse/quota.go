package abuse

import (
	"time"
)

// Quota is a message budget; zero fields mean no limit.
type Quota struct {
	PerHour int
	PerDay  int
}

// counter counts messages in the current hour and day. Windows are fixed
// (aligned to multiples of the hour length since the Unix epoch, like a
// clock's hours), so "retry after" is the end of the window.
type counter struct {
	hour, day         int64 // window indexes
	inHour, inDay     int
	hourEnds, dayEnds time.Time
}

// roll moves the counter to the windows that hold now.
func (c *counter) roll(now time.Time, hour time.Duration) {
	h := now.UnixNano() / int64(hour)
	d := now.UnixNano() / int64(24*hour)
	if h != c.hour {
		c.hour, c.inHour = h, 0
		c.hourEnds = time.Unix(0, (h+1)*int64(hour))
	}
	if d != c.day {
		c.day, c.inDay = d, 0
		c.dayEnds = time.Unix(0, (d+1)*int64(24*hour))
	}
}

// over reports whether one more message breaks q, and how long until it
// would not.
func (c *counter) over(q Quota, now time.Time) (bool, time.Duration) {
	if q.PerDay > 0 && c.inDay >= q.PerDay {
		return true, c.dayEnds.Sub(now)
	}
	if q.PerHour > 0 && c.inHour >= q.PerHour {
		return true, c.hourEnds.Sub(now)
	}
	return false, 0
}

func (c *counter) add() { c.inHour++; c.inDay++ }

// undo takes back a message counted in the windows hour and day, if they
// are still the current ones.
func (c *counter) undo(hour, day int64) {
	if c.hour == hour && c.inHour > 0 {
		c.inHour--
	}
	if c.day == day && c.inDay > 0 {
		c.inDay--
	}
}
