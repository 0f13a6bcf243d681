package coordinator

import (
	"fmt"
	"strings"
)

// maxNamed bounds the items (conflicts, permissions, files) an error names; the rest are
// counted.
const maxNamed = 20

// nameSome joins the first maxNamed of items with sep and says how many of total more there
// are: items may already hold only the first of them.
func nameSome(items []string, total int, sep string) string {
	items = items[:min(len(items), maxNamed)]
	s := strings.Join(items, sep)
	if total > len(items) {
		s += fmt.Sprintf("%s… and %d more", sep, total-len(items))
	}
	return s
}
