-- Demo database for pgate: the schema that policies/schema.kdl declares, plus a few rows
-- of realistic (fake) data. Used by ci/demo.sh and the integration tests.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f ci/demo-schema.sql
--
-- Idempotent: drops and recreates the demo schemas.
BEGIN;

DROP SCHEMA IF EXISTS reporting CASCADE;
DROP SCHEMA IF EXISTS staging CASCADE;
DROP SCHEMA IF EXISTS audit CASCADE;
DROP TABLE IF EXISTS public.payments, public.order_items, public.orders, public.products,
    public.customers CASCADE;
DROP FUNCTION IF EXISTS public.order_total(bigint);

CREATE TABLE public.customers (
    id            bigint PRIMARY KEY,
    name          text NOT NULL,
    email         text NOT NULL UNIQUE,
    phone         text,
    ssn           text,
    date_of_birth date,
    address       text,
    country       text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.products (
    id          bigint PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    description text,
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.orders (
    id               bigint PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES public.customers (id),
    status           text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled', 'refunded')),
    total_cents      bigint NOT NULL,
    currency         text NOT NULL DEFAULT 'EUR',
    shipping_address text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.order_items (
    id               bigint PRIMARY KEY,
    order_id         bigint NOT NULL REFERENCES public.orders (id),
    product_id       bigint NOT NULL REFERENCES public.products (id),
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_cents bigint NOT NULL
);

CREATE TABLE public.payments (
    id            bigint PRIMARY KEY,
    order_id      bigint NOT NULL REFERENCES public.orders (id),
    amount_cents  bigint NOT NULL,
    currency      text NOT NULL DEFAULT 'EUR',
    method        text NOT NULL,
    card_brand    text,
    card_last4    text,
    card_token    text,
    status        text NOT NULL,
    processor_ref text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION public.order_total(order_id bigint) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(quantity * unit_price_cents), 0)::bigint
          FROM public.order_items WHERE order_items.order_id = $1 $$;

CREATE SCHEMA audit;
CREATE TABLE audit.events (
    id          bigserial PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    object      text,
    detail      jsonb
);
CREATE TABLE audit.logins (
    id          bigserial PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    subject     text NOT NULL,
    client_addr inet,
    success     boolean NOT NULL
);

CREATE SCHEMA staging;
CREATE TABLE staging.orders_import (
    batch_id    text NOT NULL,
    line_no     integer NOT NULL,
    raw         jsonb NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, line_no)
);

CREATE SCHEMA reporting;
CREATE MATERIALIZED VIEW reporting.daily_revenue AS
    SELECT date_trunc('day', created_at)::date AS day,
           currency,
           count(*) AS orders,
           sum(total_cents) AS revenue_cents
    FROM public.orders
    WHERE status IN ('paid', 'shipped')
    GROUP BY 1, 2;
CREATE VIEW reporting.customer_order_counts AS
    SELECT customer_id, count(*) AS orders, max(created_at) AS last_order_at
    FROM public.orders
    GROUP BY customer_id;

-- Demo data (fake people, fake cards; the SSNs use the never-issued 9xx range).
INSERT INTO public.customers (id, name, email, phone, ssn, date_of_birth, address, country, created_at) VALUES
    (1, 'Ada Lovelace',     'ada@example.com',     '+44 20 7946 0001', '900-10-0001', '1985-12-10', '12 St James''s Sq, London',    'GB', '2025-01-03 09:12:00+00'),
    (2, 'Grace Hopper',     'grace@example.com',   '+1 202 555 0102',  '900-10-0002', '1976-12-09', '1 Navy Yard, Washington DC',    'US', '2025-02-14 16:40:00+00'),
    (3, 'Alan Turing',      'alan@example.org',    '+44 161 496 0003', '900-10-0003', '1982-06-23', '78 Adlington Rd, Wilmslow',     'GB', '2025-03-01 11:05:00+00'),
    (4, 'Katherine Johnson','kj@example.net',      '+1 757 555 0104',  '900-10-0004', '1990-08-26', '5 Langley Blvd, Hampton VA',    'US', '2025-03-22 08:30:00+00'),
    (5, 'Émilie du Châtelet','emilie@example.fr',  '+33 1 70 18 0005', '900-10-0005', '1994-12-17', '3 Rue de Cirey, Paris',         'FR', '2025-04-09 19:55:00+00');

INSERT INTO public.products (id, sku, name, description, price_cents, active) VALUES
    (1, 'KB-001', 'Mechanical keyboard', 'Tenkeyless, brown switches', 12900, true),
    (2, 'MS-002', 'Wireless mouse',      'Ergonomic, 6 buttons',        4900, true),
    (3, 'MN-003', '27" monitor',         '2560x1440, IPS',             32900, true),
    (4, 'CB-004', 'USB-C cable',         '2 m, 100 W',                  1500, true),
    (5, 'DK-005', 'Docking station',     'Discontinued model',         18900, false);

INSERT INTO public.orders (id, customer_id, status, total_cents, currency, shipping_address, created_at, updated_at) VALUES
    (1001, 1, 'shipped',   17800, 'GBP', '12 St James''s Sq, London', '2025-05-01 10:00:00+00', '2025-05-02 09:00:00+00'),
    (1002, 2, 'paid',      32900, 'USD', '1 Navy Yard, Washington DC', '2025-05-03 12:30:00+00', '2025-05-03 12:31:00+00'),
    (1003, 3, 'pending',    1500, 'GBP', '78 Adlington Rd, Wilmslow', '2025-05-04 08:15:00+00', '2025-05-04 08:15:00+00'),
    (1004, 1, 'refunded',   4900, 'GBP', '12 St James''s Sq, London', '2025-05-06 17:45:00+00', '2025-05-09 10:00:00+00'),
    (1005, 5, 'paid',      47800, 'EUR', '3 Rue de Cirey, Paris',     '2025-05-07 21:10:00+00', '2025-05-07 21:11:00+00');

INSERT INTO public.order_items (id, order_id, product_id, quantity, unit_price_cents) VALUES
    (1, 1001, 1, 1, 12900),
    (2, 1001, 2, 1,  4900),
    (3, 1002, 3, 1, 32900),
    (4, 1003, 4, 1,  1500),
    (5, 1004, 2, 1,  4900),
    (6, 1005, 3, 1, 32900),
    (7, 1005, 4, 3,  1500),
    (8, 1005, 2, 1,  4900),
    (9, 1005, 4, 1,  1500);

INSERT INTO public.payments (id, order_id, amount_cents, currency, method, card_brand, card_last4, card_token, status, processor_ref) VALUES
    (1, 1001, 17800, 'GBP', 'card',   'visa',       '4242', 'tok_demo_7f3a9c', 'captured', 'ch_demo_0001'),
    (2, 1002, 32900, 'USD', 'card',   'mastercard', '4444', 'tok_demo_1b2c3d', 'captured', 'ch_demo_0002'),
    (3, 1004,  4900, 'GBP', 'card',   'visa',       '4242', 'tok_demo_7f3a9c', 'refunded', 'ch_demo_0004'),
    (4, 1005, 47800, 'EUR', 'sepa',   NULL,         NULL,   NULL,              'captured', 'sepa_demo_0005');

INSERT INTO audit.events (occurred_at, actor, action, object, detail) VALUES
    ('2025-05-02 09:00:00+00', 'support:jane', 'update', 'public.orders/1001', '{"status": ["paid", "shipped"]}'),
    ('2025-05-09 10:00:00+00', 'support:omar', 'update', 'public.orders/1004', '{"status": ["paid", "refunded"]}');
INSERT INTO audit.logins (occurred_at, subject, client_addr, success) VALUES
    ('2025-05-02 08:59:00+00', 'jane@example.com', '192.0.2.10', true),
    ('2025-05-09 09:58:00+00', 'omar@example.com', '198.51.100.7', true),
    ('2025-05-09 09:57:00+00', 'omar@example.com', '198.51.100.7', false);

INSERT INTO staging.orders_import (batch_id, line_no, raw) VALUES
    ('2025-05-10', 1, '{"order": 1006, "customer": 4, "total_cents": 12900, "currency": "USD"}');

REFRESH MATERIALIZED VIEW reporting.daily_revenue;

COMMIT;
