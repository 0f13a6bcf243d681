package workers

import (
	"fmt"
	"net/http"
)

// HealthHandler serves /healthz (liveness: the process runs and is connected) and /readyz
// (readiness: it takes tasks; false while shutting down) for Kubernetes probes.
func HealthHandler(w *Worker) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, r *http.Request) {
		if !w.running.Load() {
			http.Error(rw, "not running", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, r *http.Request) {
		if err := w.Check(); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(rw, "ok, %d tasks in flight\n", w.InFlight())
	})
	return mux
}
