package suppress

import "slices"

// hashSet is a set of 64-bit hashes at 8 bytes each: a sorted main slice
// and a sorted slice of recent additions, merged into main when it grows
// past an eighth of main. Adding one entry thus never copies a whole
// tenant's list, and a million-entry import merges a few dozen times, not
// once per batch; a lookup is two binary searches.
type hashSet struct {
	main, recent []uint64
}

// minRecent is how large recent may grow before a merge, whatever main's size.
const minRecent = 4096

func (h *hashSet) has(x uint64) bool {
	if _, ok := slices.BinarySearch(h.main, x); ok {
		return true
	}
	_, ok := slices.BinarySearch(h.recent, x)
	return ok
}

func (h *hashSet) len() int { return len(h.main) + len(h.recent) }

func (h *hashSet) add(x uint64) {
	if h.has(x) {
		return
	}
	i, _ := slices.BinarySearch(h.recent, x)
	h.recent = slices.Insert(h.recent, i, x)
	h.settle()
}

// addMany adds xs (in any order; xs is reused).
func (h *hashSet) addMany(xs []uint64) {
	if len(xs) < 64 {
		for _, x := range xs {
			h.add(x)
		}
		return
	}
	// Sorted first, xs is looked up in main in one pass: each search
	// starts where the last ended and widens (galloping), so it reads
	// main near the last hit instead of a full binary search missing the
	// cache at every level (main holds millions).
	slices.Sort(xs)
	xs = slices.Compact(xs)
	fresh, m, lo := xs[:0], h.main, 0
	for _, x := range xs {
		i, step := lo, 1
		for i+step < len(m) && m[i+step] < x {
			i, step = i+step, step*2
		}
		j, found := slices.BinarySearch(m[i:min(i+step+1, len(m))], x)
		if lo = i + j; !found {
			fresh = append(fresh, x)
		}
	}
	h.recent = merge(h.recent, fresh)
	h.settle()
}

func (h *hashSet) settle() {
	if len(h.recent) > max(minRecent, len(h.main)/8) {
		h.main, h.recent = merge(h.main, h.recent), nil
	}
}

func (h *hashSet) remove(x uint64) {
	if i, ok := slices.BinarySearch(h.main, x); ok {
		h.main = slices.Delete(h.main, i, i+1)
	}
	if i, ok := slices.BinarySearch(h.recent, x); ok {
		h.recent = slices.Delete(h.recent, i, i+1)
	}
}

// sortedSet sorts xs and drops repeats, in place, and returns it without
// spare capacity worth keeping (appending while loading leaves up to half).
func sortedSet(xs []uint64) []uint64 {
	slices.Sort(xs)
	xs = slices.Compact(xs)
	if cap(xs)-len(xs) > len(xs)/16 {
		xs = slices.Clone(xs)
	}
	return xs
}

// merge returns the union of two sorted sets in a new exact-size slice.
func merge(a, b []uint64) []uint64 {
	out := make([]uint64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	out = append(out, a[i:]...)
	out = append(out, b[j:]...)
	return out
}
