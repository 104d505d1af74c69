package provider

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaxTextLength bounds the provider text kept in an error (in characters):
// enough for any real error message, small enough that a condition and the
// status message always fit in a status write.
const MaxTextLength = 512

var (
	queryPattern = regexp.MustCompile(`\?[^\s"']*`)
	tagPattern   = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)
	spacePattern = regexp.MustCompile(`\s+`)
)

// Redact removes query strings (E2E puts its API key there) from text that
// may quote a URL.
func Redact(s string) string {
	return queryPattern.ReplaceAllString(s, "?<redacted>")
}

// ProviderText makes a provider's words fit for a condition: query strings
// redacted, an HTML error page reduced to its text, white space collapsed,
// and cut to MaxTextLength characters, saying so when it was.
func ProviderText(s string) string {
	if strings.Contains(s, "<") && strings.Contains(s, ">") {
		s = tagPattern.ReplaceAllString(s, " ")
	}
	s = strings.TrimSpace(spacePattern.ReplaceAllString(Redact(s), " "))
	if utf8.RuneCountInString(s) <= MaxTextLength {
		return s
	}
	r := []rune(s)
	return fmt.Sprintf("%s... (cut: %d characters in all)", string(r[:MaxTextLength]), len(r))
}
