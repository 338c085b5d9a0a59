import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import { DeliveriesTable, type WebhookDelivery, deliveryState } from '../src/pages/AdminWebhooks';

afterEach(() => {
  document.body.innerHTML = '';
});

const delivery = (overrides: Partial<WebhookDelivery>): WebhookDelivery => ({
  id: 'd-1',
  endpoint_id: 'e-1',
  event_id: 'ev-1',
  event: 'participant.joined',
  created_at: 1_796_000_000,
  attempts: 0,
  next_attempt_at: 1_796_000_000,
  delivered_at: null,
  failed_at: null,
  last_status: null,
  last_error: null,
  ...overrides,
});

describe('webhook deliveries', () => {
  it('say in words where each stands', () => {
    expect(deliveryState(delivery({}))).toBe('Waiting to be sent');
    expect(deliveryState(delivery({ attempts: 2 }))).toMatch(/^Retrying \(attempt 3 at /);
    expect(deliveryState(delivery({ attempts: 12, failed_at: 1_796_000_500 }))).toBe('Failed after 12 attempts');
    expect(deliveryState(delivery({ attempts: 1, delivered_at: 1_796_000_100 }))).toMatch(/^Delivered /);
  });

  it('name the endpoint by its URL and show the last answer', () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    render(
      <DeliveriesTable
        view={{
          events: ['participant.joined'],
          endpoints: [{ id: 'e-1', url: 'https://hooks.example.com/s', events: ['participant.joined'], created_at: '' }],
          waiting: 1,
          failed: 0,
          deliveries: [
            delivery({ attempts: 1, last_status: 500, last_error: 'answered 500 Internal Server Error' }),
            delivery({ id: 'd-2', attempts: 1, delivered_at: 1_796_000_100, last_status: 204 }),
          ],
        }}
      />,
      root,
    );
    expect(root.textContent).toContain('1 waiting, 0 failed.');
    const rows = root.querySelectorAll('tbody tr');
    expect(rows[0]?.textContent).toContain('https://hooks.example.com/s');
    expect(rows[0]?.textContent).toContain('answered 500');
    expect(rows[1]?.textContent).toContain('HTTP 204');
  });
});
