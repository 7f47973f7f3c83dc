-- Every attempt updates its delivery row. Leaving room on each page lets those
-- updates stay HOT (no new index entries), since no updated column is indexed.
ALTER TABLE "webhook_deliveries" SET (fillfactor = 85);
