package hooks

import (
	"encoding/json"
	"strconv"

	"github.com/webnovel/webnovel-backup/internal/redact"
)

// ReportEnv is a post-hook's environment from a command's --json report (backup's or
// restore's, or anything that marshals to the same fields): STATUS, ERROR, RUN_ID,
// BACKUP_PATH (a backup's path, a restore's backup), FILES, BYTES, ROWS (the report's total,
// else the sum of its models' rows) and DURATION_SECONDS. Locations are redacted.
func ReportEnv(report any) Env {
	var r struct {
		Status   string  `json:"status"`
		Error    string  `json:"error"`
		RunID    string  `json:"run_id"`
		Path     string  `json:"path"`
		Backup   string  `json:"backup"`
		Files    int64   `json:"files"`
		Bytes    int64   `json:"bytes"`
		Rows     *int64  `json:"rows"`
		Duration float64 `json:"duration_seconds"`
		Models   []struct {
			Rows int64 `json:"rows"`
		} `json:"models"`
	}
	// A report that does not marshal leaves the zero values: the hook still runs.
	if raw, err := json.Marshal(report); err == nil {
		json.Unmarshal(raw, &r)
	}
	rows := int64(0)
	if r.Rows != nil {
		rows = *r.Rows
	} else {
		for _, m := range r.Models {
			rows += m.Rows
		}
	}
	path := r.Path
	if path == "" {
		path = r.Backup
	}
	return Env{
		"STATUS": r.Status, "ERROR": redact.URL(r.Error), "RUN_ID": r.RunID, "BACKUP_PATH": redact.URL(path),
		"FILES": strconv.FormatInt(r.Files, 10), "BYTES": strconv.FormatInt(r.Bytes, 10),
		"ROWS": strconv.FormatInt(rows, 10), "DURATION_SECONDS": strconv.FormatFloat(r.Duration, 'f', 3, 64),
	}
}
