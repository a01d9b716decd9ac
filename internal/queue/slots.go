package queue

// Connection slots under Config.MaxConnections. When every slot is taken,
// a destination with ready mail and no connection waits in a FIFO (its
// high-lane mail in a FIFO served first) and a worker with nothing left to
// send closes at once instead of idling IdleTimeout, so that the slot goes
// to the longest-waiting destination: with thousands of destinations
// draining, fresh high-lane mail to one without a connection gets the
// next slot, and no destination starves behind idle connections. While
// high-lane mail waits, a worker whose destination has no high-lane mail
// gives up its slot before its next job. High-lane mail to a destination
// without a connection may also go over MaxConnections by a twentieth (at
// least one): it does not wait for another connection's message to end;
// while over the cap, workers without high-lane mail give up their slots.

// waitForSlot queues d for the next free slot. Caller holds s.mu.
func (s *Scheduler) waitForSlot(d *dest, high bool) {
	if high {
		if !d.inSlotWaitHigh {
			d.inSlotWaitHigh = true
			s.slotWaitHigh = append(s.slotWaitHigh, d)
		}
		return
	}
	if !d.inSlotWait {
		d.inSlotWait = true
		s.slotWait = append(s.slotWait, d)
	}
}

// highLimit is the connection cap for high-lane mail.
func (s *Scheduler) highLimit() int {
	return s.cfg.MaxConnections + max(1, s.cfg.MaxConnections/20)
}

// giveSlots starts workers for waiting destinations while slots are free,
// high-lane waiters first. Caller holds s.mu.
func (s *Scheduler) giveSlots() {
	for i, q := range []*[]*dest{&s.slotWaitHigh, &s.slotWait} {
		limit := s.cfg.MaxConnections
		if i == 0 {
			limit = s.highLimit()
		}
		for len(*q) > 0 && s.conns < limit && !s.stopped {
			d := (*q)[0]
			(*q)[0] = nil
			*q = (*q)[1:]
			if i == 0 {
				d.inSlotWaitHigh = false
			} else {
				d.inSlotWait = false
			}
			if s.dests[d.key] == d && d.nready > 0 && d.active == 0 {
				s.kickWithin(d, limit)
			}
		}
		if len(*q) == 0 {
			*q = nil // let the backing array go
		}
	}
}

// hasHigh reports whether d has high-lane mail ready. Caller holds s.mu.
func hasHigh(d *dest) bool {
	for _, f := range d.ready[0].byTenant {
		for _, j := range f.items[f.head:] {
			if !j.removed {
				return true
			}
		}
	}
	return false
}
