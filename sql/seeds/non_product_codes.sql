-- Grain: one row per product-code pattern that marks a line as something other
-- than a product sale. Analysts may add or remove rows; installing the views
-- again only seeds the table when it is empty. Patterns are case-insensitive
-- regular expressions matched against the whole product_id.
create table if not exists mkt.non_product_codes (
    pattern varchar primary key,
    reason varchar not null
);

insert into mkt.non_product_codes
select *
from (
    values
        ('POST', 'postage'),
        ('DOT', 'postage'),
        ('C2', 'carriage'),
        ('D', 'discount'),
        ('M', 'manual adjustment'),
        ('S', 'samples'),
        ('B', 'bad debt adjustment'),
        ('BANK CHARGES', 'bank charges'),
        ('AMAZONFEE', 'marketplace fee'),
        ('CRUK', 'charity commission'),
        ('PADS', 'packing material'),
        ('DCGS.*', 'marketplace listing'),
        ('gift_0001_.*', 'gift voucher')
) as seed (pattern, reason)
where not exists (select 1 from mkt.non_product_codes);
