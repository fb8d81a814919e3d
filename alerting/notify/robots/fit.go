package robots

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// more is the last line of a message that does not list every alert.
func more(n int) string {
	return "…and " + strconv.Itoa(n) + " more"
}

// withMore appends the "…and n more" line to text when n > 0.
func withMore(text string, n int) string {
	if n <= 0 {
		return text
	}
	if text == "" {
		return more(n)
	}
	return text + "\n" + more(n)
}

// tidy makes rendered text safe to measure and send: valid UTF-8 (a JSON
// encoder would otherwise grow each bad byte into three) without trailing
// blank lines.
func tidy(s string) string {
	return strings.TrimRight(strings.ToValidUTF8(s, "\uFFFD"), " \t\r\n")
}

// fit returns the message listing as many of the first shown alerts (of
// total) as fit in limit as measured by measure, ending with "…and N more"
// when alerts are left out. render(k) renders the message for the first k
// alerts. If not even one alert fits, the text for the first one is cut on
// a line boundary (or, failing that, a character boundary).
//
// measure must not decrease as a string grows (byte length, JSON-encoded
// length); the result is then within limit whenever limit leaves room for
// the "…and N more" line itself.
func fit(render func(k int) (string, error), shown, total, limit int, measure func(string) int) (string, error) {
	text, err := render(shown)
	if err != nil {
		return "", err
	}
	msg := withMore(tidy(text), total-shown)
	if measure(msg) <= limit {
		return msg, nil
	}
	// Find the most alerts that fit. Templates list alerts in order, so the
	// size grows with k and a binary search needs O(log n) renderings.
	best, bestMsg := 0, ""
	for lo, hi := 1, shown-1; lo <= hi; {
		k := lo + (hi-lo)/2
		t, err := render(k)
		if err != nil {
			return "", err
		}
		if m := withMore(tidy(t), total-k); measure(m) <= limit {
			best, bestMsg = k, m
			lo = k + 1
		} else {
			hi = k - 1
		}
	}
	if best > 0 {
		return bestMsg, nil
	}
	k := min(1, shown)
	if k != shown {
		if text, err = render(k); err != nil {
			return "", err
		}
	}
	return cut(tidy(text), total-k, limit, measure), nil
}

// cut shortens text to fit limit with its "…and n more" line: at the last
// line boundary that fits, else at the last character that fits (marked
// with "…"), always keeping UTF-8 valid.
func cut(text string, n, limit int, measure func(string) int) string {
	tail := "…"
	if n > 0 {
		tail = more(n)
	}
	// Line boundaries: the prefixes that end just before a newline.
	var ends []int
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			ends = append(ends, i)
		}
	}
	if i := sort.Search(len(ends), func(i int) bool {
		return measure(strings.TrimRight(text[:ends[i]], " \t\r\n")+"\n"+tail) > limit
	}); i > 0 {
		if head := strings.TrimRight(text[:ends[i-1]], " \t\r\n"); head != "" {
			return head + "\n" + tail
		}
	}
	// Character boundaries.
	var starts []int
	for i := range text {
		starts = append(starts, i)
	}
	midTail := "…"
	if n > 0 {
		midTail = "…\n" + tail
	}
	if i := sort.Search(len(starts), func(i int) bool {
		return measure(text[:starts[i]]+midTail) > limit
	}); i > 1 {
		return text[:starts[i-1]] + midTail
	}
	return truncateBytes(tail, limit)
}

// truncateBytes cuts s to at most n bytes on a character boundary.
func truncateBytes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
