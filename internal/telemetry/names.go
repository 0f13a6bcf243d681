package telemetry

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// descName reads a metric's name from its description (Desc has no accessor for it).
var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// MetricNames lists every series name this process can export, as PromQL names them: a
// histogram's _bucket, _sum and _count, a summary's _sum and _count. The tool's own metrics
// are listed even before they have a series (a last-success gauge before the first success),
// so dashboards and alert rules can be checked against the list.
func MetricNames() ([]string, error) {
	seen := map[string]bool{}
	mfs, err := registry().Gather()
	if err != nil {
		return nil, fmt.Errorf("metric names: gather: %w", err)
	}
	for _, mf := range mfs {
		addNames(seen, mf.GetName(), mf.GetType())
	}
	for _, c := range ownMetrics {
		typ := dto.MetricType_GAUGE
		if _, ok := c.(*prometheus.HistogramVec); ok {
			typ = dto.MetricType_HISTOGRAM
		}
		ch := make(chan *prometheus.Desc, 4)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := descName.FindStringSubmatch(d.String()); m != nil {
				addNames(seen, m[1], typ)
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func addNames(seen map[string]bool, name string, typ dto.MetricType) {
	switch typ {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		seen[name+"_bucket"], seen[name+"_sum"], seen[name+"_count"] = true, true, true
	case dto.MetricType_SUMMARY:
		seen[name], seen[name+"_sum"], seen[name+"_count"] = true, true, true
	default:
		seen[name] = true
	}
}
