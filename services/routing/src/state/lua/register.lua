-- Register a contact center in the global list the sweepers walk. The only
-- script whose key is outside a center's hash slot; it touches nothing else.
-- KEYS: rapport:centers. ARGV: 1 center id.
redis.call('SADD', KEYS[1], ARGV[1])
return 1
