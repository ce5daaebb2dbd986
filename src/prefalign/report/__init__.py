"""What a run did, for people: the HTML report, the trackers, the runs table."""
