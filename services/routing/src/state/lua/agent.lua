-- One agent's live state in a single read (read-only): see `agent_view`.
-- ARGV: 4 agent id.
return agent_view(ARGV[4])
