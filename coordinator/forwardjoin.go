package coordinator

// forwardJoin looks records up by path in a stream sorted by path, reading the stream forward
// once: the planner asks for the paths of a sorted listing, so a record passed is never
// needed again, and memory does not grow with the stream.
type forwardJoin[T any] struct {
	// next returns the stream's next record; false at its end.
	next func() (T, bool, error)
	// path is a record's path.
	path func(*T) string
	cur  T
	// have: cur is read and not yet passed; done: the stream ended.
	have, done bool
}

// find returns the record of path, if the stream holds one; paths must be asked for in
// increasing order.
func (j *forwardJoin[T]) find(path string) (T, bool, error) {
	var none T
	for !j.done {
		if !j.have {
			rec, ok, err := j.next()
			if err != nil {
				return none, false, err
			}
			if !ok {
				j.done = true
				break
			}
			j.cur, j.have = rec, true
		}
		switch p := j.path(&j.cur); {
		case p < path:
			j.have = false
		case p == path:
			j.have = false
			return j.cur, true, nil
		default:
			return none, false, nil
		}
	}
	return none, false, nil
}
