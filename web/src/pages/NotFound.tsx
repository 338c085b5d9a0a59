import { PageTitle } from '../components/ui';

export function NotFound() {
  return (
    <section class="card narrow">
      <PageTitle>Page not found</PageTitle>
      <p>
        There is nothing at this address. <a href="/">Go to your interviews</a>.
      </p>
    </section>
  );
}
